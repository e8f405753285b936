"""Tokenised-data cache: LLaMA-Factory's `tokenized_path`, keyed so that a stale cache is never used.

LLaMA-Factory loads a saved tokenised dataset from `tokenized_path` and then ignores every data
argument ("Loading dataset from disk will ignore other data arguments"): pointed at a fixed folder,
a changed dataset would train on the old tokens. So each run gets `.cache/tokenized/<key>`, where
the key hashes everything that shapes the tokens: the content of every dataset file (and its
dataset_info.json entry), the tokenizer's files, the LLaMA-Factory version and every rendered
train.yaml key except the ones listed in NOT_DATA (optimiser, logging, output, hardware: keys that
cannot change the tokens). Anything else changes the key, so the cache is conservative.

LLaMA-Factory writes dataset_dict.json before the splits, so a folder cut off mid-save looks complete
to it: a folder counts only once factory-kit has sealed it (COMPLETE, written after LLaMA-Factory
logged the save), and an unsealed one is removed before the launch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from factory_kit.data import registry

CACHE_DIR = ".cache/tokenized"  # under the project
COMPLETE = ".factory-kit-complete"
SAVED_LINE = "Tokenized dataset is saved at"  # LLaMA-Factory 0.9.5's log line after save_to_disk
# train.yaml keys that cannot change the tokenised data (everything else is part of the key)
NOT_DATA = frozenset({
    "output_dir", "overwrite_output_dir", "logging_steps", "save_steps", "save_total_limit", "save_only_model",
    "plot_loss", "report_to", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type",
    "warmup_ratio", "weight_decay", "max_grad_norm", "disable_gradient_checkpointing", "bf16", "fp16",
    "ddp_timeout", "ddp_backend", "deepspeed", "ray_num_workers", "ray_init_kwargs", "eval_strategy",
    "eval_steps", "preprocessing_num_workers", "dataloader_num_workers", "overwrite_cache", "tokenized_path",
    "resume_from_checkpoint", "finetuning_type", "lora_rank", "lora_alpha", "lora_dropout", "lora_target",
    "use_dora", "freeze_trainable_layers", "freeze_trainable_modules", "quantization_bit", "quantization_method",
    "quantization_type", "double_quantization", "trust_remote_code", "pref_beta", "pref_loss", "pref_ftx",
})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "vocab.txt",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                   "generation_config.json", "config.json")


def _digest(path: Path, digest: "hashlib._Hash") -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def _files_hash(paths: list[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        _digest(path, digest)
    return digest.hexdigest()


def _dataset_part(name: str, entry: dict[str, Any], registry_dir: Path) -> dict[str, Any] | None:
    """A dataset's entry and content hash; None when it is not local files (a hub dataset: no key)."""
    file_name = entry.get("file_name")
    path = (registry_dir / file_name) if file_name else None
    if path is None or not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"entry": entry, "content": _files_hash(files, path if path.is_dir() else path.parent)}


def _tokenizer_part(model: str, project: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A local model's tokenizer files (hashed); a hub id by its name and revision."""
    folder = Path(model) if Path(model).is_absolute() else project / model
    if folder.is_dir():
        files = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]
        return {"files": _files_hash(files, folder)}
    return {"hub": model, "revision": config.get("model_revision", "main")}


def cache_key(config: dict[str, Any], project: Path) -> str | None:
    """The key of train.yaml's tokenised data, or None when it cannot be known (a hub dataset, streaming)."""
    if config.get("streaming"):
        return None  # LLaMA-Factory cannot save a streamed dataset
    registry_dir = project / config.get("dataset_dir", "data")
    entries = registry.load(registry_dir)
    datasets = {}
    for field in ("dataset", "eval_dataset"):
        for name in str(config.get(field) or "").split(","):
            if not name.strip():
                continue
            part = _dataset_part(name.strip(), entries.get(name.strip()) or {}, registry_dir)
            if part is None:
                return None
            datasets[f"{field}:{name.strip()}"] = part
    try:
        version = metadata.version("llamafactory")
    except metadata.PackageNotFoundError:
        version = None
    parts = {"llamafactory": version, "datasets": datasets,
             "tokenizer": _tokenizer_part(str(config["model_name_or_path"]), project, config),
             "config": {k: v for k, v in sorted(config.items()) if k not in NOT_DATA}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare(key: str, project: Path) -> tuple[str, bool]:
    """The folder for ``key`` (relative to the project) and whether it holds a complete cache; a folder
    left unsealed (a save cut off, a run that failed before saving) is removed first."""
    rel = f"{CACHE_DIR}/{key}"
    folder = project / rel
    if folder.is_dir() and not (folder / COMPLETE).exists():
        shutil.rmtree(folder)
    return rel, folder.is_dir()


def _logged_save(log: Path | str) -> bool:
    if isinstance(log, str):
        return SAVED_LINE in log
    if not log.is_file():
        return False
    with open(log, encoding="utf-8", errors="replace") as fh:  # a long run's log: line by line
        return any(SAVED_LINE in line for line in fh)


def seal(folder: Path, log: Path | str) -> bool:
    """Mark the cache complete once LLaMA-Factory has logged that it saved it (``log``: the run's log file,
    or its text)."""
    if folder.is_dir() and not (folder / COMPLETE).exists() and _logged_save(log):
        (folder / COMPLETE).write_text("saved by LLaMA-Factory; key: see factory_kit/run/tokcache.py\n",
                                       encoding="utf-8")
        return True
    return False


def _dataset_paths(config: dict[str, Any], project: Path) -> list[Path | None]:
    registry_dir = project / config.get("dataset_dir", "data")
    entries = registry.load(registry_dir)
    out: list[Path | None] = []
    for field in ("dataset", "eval_dataset"):
        for name in (n.strip() for n in str(config.get(field) or "").split(",")):
            if name:
                file_name = (entries.get(name) or {}).get("file_name")
                out.append(registry_dir / file_name if file_name else None)
    return out


def data_bytes(config: dict[str, Any], project: Path) -> int:
    """Bytes of train.yaml's local dataset files (a folder: all its files)."""
    total = 0
    for path in _dataset_paths(config, project):
        if path is not None and path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        elif path is not None and path.is_file():
            total += path.stat().st_size
    return total
