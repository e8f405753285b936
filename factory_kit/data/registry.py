"""dataset_info.json: the registry LLaMA-Factory and its web UI read.

Writes merge into what is there (never overwrite other entries), are atomic (temp file +
rename, so a crash never leaves half a registry) and locked (fcntl lock file, so several
imports at once do not lose each other's entries).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError

REGISTRY_FILE = "dataset_info.json"


def registry_path(registry_dir: Path) -> Path:
    return Path(registry_dir) / REGISTRY_FILE


def load(registry_dir: Path) -> dict[str, Any]:
    """Read the registry; a missing file is an empty registry."""
    path = registry_path(registry_dir)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FactoryKitError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file or restore it from git"
        ) from None
    if not isinstance(data, dict):
        raise FactoryKitError(f"{path}: expected a JSON object of dataset entries")
    return data


@contextlib.contextmanager
def _locked(registry_dir: Path) -> Iterator[None]:
    Path(registry_dir).mkdir(parents=True, exist_ok=True)
    lock_path = Path(registry_dir) / ".dataset_info.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def register(registry_dir: Path, entries: dict[str, dict[str, Any]]) -> Path:
    """Merge ``entries`` (name -> dataset_info entry) into the registry; returns its path."""
    path = registry_path(registry_dir)
    with _locked(registry_dir):
        data = load(registry_dir)
        data.update(entries)
        io.write_json(path, data, sort_keys=True, fsync=True)
    return path


def unregister(registry_dir: Path, names: list[str]) -> None:
    path = registry_path(registry_dir)
    with _locked(registry_dir):
        data = load(registry_dir)
        for name in names:
            data.pop(name, None)
        io.write_json(path, data, sort_keys=True, fsync=True)


def file_name_for(registry_dir: Path, data_file: Path) -> str:
    """``file_name`` as LLaMA-Factory wants it: relative to dataset_dir (the registry folder)."""
    return os.path.relpath(Path(data_file).resolve(), Path(registry_dir).resolve())


def import_metas(meta_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The import records in ``data/meta/`` (one JSON per `data import`), sorted; unreadable ones skipped."""
    for path in sorted(meta_dir.glob("*.json")) if meta_dir.is_dir() else []:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            yield path, meta


def local_dataset(name: str, project: Path, purpose: str) -> tuple[dict[str, Any], Path]:
    """A registered dataset's entry and its local file, or one line saying what is registered and
    how to import it. ``purpose`` ends the hub-entry message ("stats work on local files only")."""
    reg_dir = paths.registry_dir(project)
    info = load(reg_dir)
    if name not in info:
        known = ", ".join(sorted(info)) or "none yet"
        raise FactoryKitError(f"dataset {name!r} is not in {paths.relative(registry_path(reg_dir), project)} "
                              f"(registered: {known}); import it first with `factory-kit data import PATH --name {name}`")
    entry = info[name]
    if not isinstance(entry, dict) or "file_name" not in entry:
        raise FactoryKitError(f"dataset {name!r}: a hub/script entry with no file_name; {purpose}")
    path = (reg_dir / entry["file_name"]).resolve()
    if not path.is_file():
        raise FactoryKitError(f"dataset {name!r}: its file {paths.relative(path, project)} is missing "
                              "(or is a folder); re-import it")
    return entry, path
