"""Where an import's files live in the project, and who owns a dataset name.

``data/NAME.jsonl`` (rows), ``data/quarantine/NAME.rejected.jsonl`` (rejects with reasons),
``data/benchmarks/NAME.jsonl`` + ``NAME.dev.jsonl`` (exam items for evaluation) and
``data/meta/NAME.json`` (what the import did: counts, options, the names it registered).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry

SPLIT_SUFFIX = {"train": "_train", "val": "_val", "test": "_test"}


def data_file(project: Path, name: str) -> Path:
    return paths.data_dir(project) / f"{name}.jsonl"


def quarantine_file(project: Path, name: str) -> Path:
    return paths.quarantine_dir(project) / f"{name}.rejected.jsonl"


def benchmark_file(project: Path, name: str) -> Path:
    return paths.benchmark_dir(project) / f"{name}.jsonl"


def dev_file(project: Path, name: str) -> Path:
    """Few-shot examples for a benchmark, as the evaluation reads them: ``NAME.dev.jsonl``."""
    return paths.benchmark_dir(project) / f"{name}.dev.jsonl"


def meta_file(project: Path, name: str) -> Path:
    return paths.meta_dir(project) / f"{name}.json"


def read_meta(project: Path, name: str) -> dict[str, Any] | None:
    path = meta_file(project, name)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def split_names(name: str) -> list[str]:
    return [name + suffix for suffix in SPLIT_SUFFIX.values()]


def refuse_taking_over(project: Path, name: str, split_names: list[str]) -> None:
    """An import must not silently replace a dataset another import owns: a split of another
    dataset (``tcm_qa_train`` of ``tcm_qa``), or a dataset imported on its own under a name this
    import's --split would write. ``--force`` takes it over."""
    owners: dict[str, str] = {}
    for path, meta in registry.import_metas(paths.meta_dir(project)):
        for dataset in meta.get("registered") or []:
            if dataset != path.stem:
                owners[dataset] = path.stem
    owner = owners.get(name)
    if owner and owner != name:
        raise FactoryKitError(
            f"--name {name}: `{name}` is a split of dataset `{owner}` ({paths.relative(meta_file(project, owner), project)}); "
            f"choose another --name, re-import {owner}, or pass --force to replace it")
    for split_name in split_names:
        if owners.get(split_name) in (None, name) and meta_file(project, split_name).exists():
            raise FactoryKitError(
                f"--split would replace `{split_name}`, a dataset imported on its own "
                f"({paths.relative(meta_file(project, split_name), project)}); choose another --name, or pass --force")
