"""dataset_info.json: the registry LLaMA-Factory and its web UI read.

Writes merge into what is there (never overwrite other entries), are atomic (temp file +
rename, so a crash never leaves half a registry) and locked (fcntl lock file, so several
imports at once do not lose each other's entries).

:func:`commit` puts an import's files and registry entries in place together, under the lock:
it first writes a journal (``dataset_info/.NAME.commit``: temp file -> final file renames, files
to remove, entries to set and drop), then does what it says and removes it. A process killed in
between leaves the journal, and the next :func:`load` (any command that reads the registry) or
import finishes it (rolls forward: every temp file it names was complete before it was written).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from factory_kit.core import interrupts, io, paths
from factory_kit.core.errors import FactoryKitError

REGISTRY_FILE = "dataset_info.json"
JOURNAL_SUFFIX = ".commit"


def registry_path(registry_dir: Path) -> Path:
    return Path(registry_dir) / REGISTRY_FILE


def load(registry_dir: Path) -> dict[str, Any]:
    """Read the registry (finishing a commit a killed import left first); a missing file is an
    empty registry."""
    if journals(registry_dir):
        recover(registry_dir)
    return _read(registry_dir)


def _read(registry_dir: Path) -> dict[str, Any]:
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
def locked(registry_dir: Path) -> Iterator[None]:
    """The registry lock: writers of dataset_info.json and committing imports hold it."""
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
    with locked(registry_dir):
        recover_locked(registry_dir)
        return _update(registry_dir, entries, [])


def unregister(registry_dir: Path, names: list[str]) -> None:
    with locked(registry_dir):
        recover_locked(registry_dir)
        _update(registry_dir, {}, names)


def _update(registry_dir: Path, entries: dict[str, dict[str, Any]], drop: list[str]) -> Path:
    """Under the lock: drop ``drop``, merge ``entries``, write atomically."""
    path = registry_path(registry_dir)
    data = _read(registry_dir)
    for name in drop:
        data.pop(name, None)
    data.update(entries)
    io.write_json(path, data, sort_keys=True, fsync=True)
    return path


# -- commits: several files and the registry, all or nothing ----------------------------------------

def journals(registry_dir: Path) -> list[Path]:
    """Commit journals: a live commit's (while it holds the lock) or ones killed processes left."""
    folder = Path(registry_dir)
    return sorted(folder.glob(f".*{JOURNAL_SUFFIX}")) if folder.is_dir() else []


def commit(registry_dir: Path, name: str, replace: list[tuple[Path, Path]], remove: list[Path],
           entries: dict[str, dict[str, Any]], drop: list[str]) -> None:
    """Rename each (temp, final) pair of ``replace`` into place, then drop ``drop`` from the
    registry and merge ``entries`` into it, then remove the files ``remove`` (so the registry
    never names a missing file), as one step: journalled first (see the module docstring)."""
    registry_dir = Path(registry_dir)

    def rel(p: Path) -> str:
        return os.path.relpath(Path(p).resolve(), registry_dir.resolve())

    journal = {"name": name, "pid": os.getpid(), "replace": [[rel(t), rel(f)] for t, f in replace],
               "remove": [rel(p) for p in remove], "register": entries, "unregister": drop}
    with locked(registry_dir):
        recover_locked(registry_dir)
        path = registry_dir / f".{name}{JOURNAL_SUFFIX}"
        io.write_json(path, journal, fsync=True)
        _apply(registry_dir, journal, path)


def _apply(registry_dir: Path, journal: dict[str, Any], path: Path) -> list[str]:
    """Do what a journal says; each step may already be done (a rename whose temp file is gone).
    Returns the final files neither renamed nor present (their temp file was lost)."""
    lost = []
    for i, (tmp, final) in enumerate(journal["replace"]):
        tmp_path, final_path = registry_dir / tmp, registry_dir / final
        if tmp_path.exists():
            io.replace(tmp_path, final_path)
        elif not final_path.exists():
            lost.append(final)
        if i == 0:
            interrupts.pause_point("commit-mid")
    _update(registry_dir, journal["register"], journal["unregister"])
    for gone in journal["remove"]:
        with contextlib.suppress(FileNotFoundError):
            (registry_dir / gone).unlink()
    path.unlink()
    return lost


def recover(registry_dir: Path) -> list[str]:
    """Finish the commits killed processes left (see :func:`recover_locked`)."""
    with locked(registry_dir):
        return recover_locked(registry_dir)


def recover_locked(registry_dir: Path) -> list[str]:
    """Under the lock (so no live process is mid-commit): finish every journalled commit left
    behind. Returns one line per commit finished."""
    done = []
    for path in journals(registry_dir):
        try:
            journal = json.loads(path.read_text(encoding="utf-8"))
            lost = _apply(Path(registry_dir), journal, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FactoryKitError(f"{path}: cannot finish an interrupted import's commit ({exc}); re-import that "
                                  "dataset, then delete this file") from None
        line = f"finished the interrupted commit of {journal.get('name')}"
        if lost:
            line += f" (missing, re-import it: {', '.join(lost)})"
        done.append(line)
    return done


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
