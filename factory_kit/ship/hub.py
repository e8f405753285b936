"""Push the merged model, the adapter and/or the GGUF files to a Hugging Face Hub repo in one commit,
with the generated model card as README.md. The token comes from the environment only (``HF_TOKEN``),
the repo is private unless the recipe says otherwise, and no message or file here ever holds the token."""

from __future__ import annotations

import os
from pathlib import Path

from factory_kit.core.errors import FactoryKitError
from factory_kit.run.records import MERGED_MARKER

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# What of a training output folder is the adapter (the rest is checkpoints, logs and records).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "vocab.json",
                 "merges.txt", "added_tokens.json", "tokenizer.model")
SKIP = {MERGED_MARKER, "README.md"}


def token() -> str:
    for var in TOKEN_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    raise FactoryKitError("pushing to the Hub needs a token in the environment: `export HF_TOKEN=hf_...` (a write "
                          "token from https://huggingface.co/settings/tokens); factory-kit reads no token file")


def folder_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(path in repo, local file) for a merged model folder: every file but factory-kit's marker."""
    return [(prefix + str(p.relative_to(folder)), p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in SKIP and not p.name.endswith(".partial")
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)]


def adapter_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    return [(prefix + name, folder / name) for name in ADAPTER_FILES if (folder / name).is_file()]


def _transport_errors() -> tuple[type[Exception], ...]:
    try:
        import httpx
    except ImportError:
        return ()
    return (httpx.HTTPError,)


def push(repo: str, files: list[tuple[str, Path]], card: str, *, private: bool = True,
         message: str = "Upload from factory-kit") -> str:
    """Create ``repo`` (kept as it is when it exists) and commit ``files`` + README.md; returns the repo URL."""
    secret = token()
    try:
        from huggingface_hub import CommitOperationAdd, HfApi
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:
        raise FactoryKitError("pushing needs huggingface_hub: `pip install huggingface_hub`") from None
    api = HfApi(token=secret)
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")))
    try:
        url = api.create_repo(repo, private=private, exist_ok=True)
        api.create_commit(repo, operations=ops, commit_message=message)
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        first = str(exc).replace(secret, "***").splitlines()[0]
        hint = {401: "; is HF_TOKEN a valid token?", 403: "; does HF_TOKEN have write access to it?"}.get(status, "")
        raise FactoryKitError(f"Hub push to {repo} failed (HTTP {status}): {first}{hint}") from None
    except (OSError, *_transport_errors()) as exc:
        raise FactoryKitError(f"Hub push to {repo} failed: {str(exc).replace(secret, '***')}") from None
    return str(url)
