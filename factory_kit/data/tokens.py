"""A local tokenizer for counting tokens (stats, token-sized text chunks); never touches the hub."""

from __future__ import annotations

from pathlib import Path

from factory_kit.core.errors import FactoryKitError


def load_tokenizer(path: str | Path):
    """A local tokenizer (a model or tokenizer folder); never touches the hub."""
    p = Path(path)
    if not p.exists():
        raise FactoryKitError(f"--tokenizer {path}: no such folder (give a local model or tokenizer folder)")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(p), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many kinds
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FactoryKitError(f"--tokenizer {path}: cannot load a tokenizer there ({msg})") from None
