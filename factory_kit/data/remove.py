"""``factory-kit data rm NAME``: a dataset and everything made for it go, in one commit (the same
journalled step as an import's, :mod:`.commit`): its rows, splits, benchmark and few-shot files,
quarantine, import record, stats and decontamination report, and its registry entries.

A dataset registered by hand (no import record) loses only its registry entry: its file is the
user's own. A recipe in ``recipes/`` that trains or evaluates on it stops the removal (``--force``
removes it all the same).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import commit, registry, store

RECIPE_KEYS = ("datasets", "eval_datasets")  # recipe keys that name datasets


@dataclass
class Removed:
    """What :func:`remove_dataset` did (paths relative to the project)."""

    name: str
    files: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # files left in place: not written by an import
    used_by: list[str] = field(default_factory=list)  # recipes naming it (removed with --force)
    cleaned: str | None = None


def _names_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def recipes_using(project: Path, names: list[str]) -> list[str]:
    """``recipes/FILE (key: name, ...)`` for each recipe in the project that names one of ``names``
    under ``datasets``/``eval_datasets`` (a recipe that does not parse: when a name appears in it)."""
    from ruamel.yaml import YAML

    folder = Path(project) / "recipes"
    found = []
    for path in sorted(folder.rglob("*.y*ml")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            recipe = YAML(typ="safe", pure=True).load(text)
        except Exception:  # ruamel raises many types; a broken recipe is searched as text
            recipe = None
        hits = []
        if isinstance(recipe, dict):
            for key in RECIPE_KEYS:
                hits += [f"{key}: {n}" for n in _names_in(recipe.get(key)) if n in names]
        elif any(re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text) for n in names):
            hits.append("does not parse; names it")
        if hits:
            found.append(f"{paths.relative(path, project)} ({', '.join(hits)})")
    return found


def _owner(project: Path, name: str) -> str | None:
    """The import whose split ``name`` is (``tcm_qa`` for ``tcm_qa_train``), if any."""
    for path, meta in registry.import_metas(paths.meta_dir(project)):
        if path.stem != name and name in (meta.get("registered") or []):
            return path.stem
    return None


def _known(project: Path, info: dict[str, Any]) -> list[str]:
    return sorted(set(info) | {p.stem for p, _ in registry.import_metas(paths.meta_dir(project))})


def _files(project: Path, name: str, datasets: list[str]) -> list[Path]:
    """Every file an import of ``name`` (registering ``datasets``) may have written, or made for it since."""
    files = [store.data_file(project, n) for n in datasets]
    files += [store.quarantine_file(project, name), store.benchmark_file(project, name),
              store.dev_file(project, name), paths.data_dir(project) / "decontam" / f"{name}.json",
              store.meta_file(project, name)]
    return [f for f in files if f.is_file()]


def remove_dataset(project: Path, name: str, *, force: bool = False) -> Removed:
    """Remove dataset ``name`` (see the module docstring). Raises FactoryKitError for an unknown
    name, a split of another import, or (without ``force``) a dataset a recipe uses."""
    project = Path(project)
    cleaned = commit.clean_stale(project)
    reg_dir = paths.registry_dir(project)
    info = registry.load(reg_dir)
    meta = store.read_meta(project, name)
    if meta is None and name not in info:
        known = ", ".join(_known(project, info)) or "none yet"
        raise FactoryKitError(f"data rm {name}: no such dataset (known: {known})")
    owner = _owner(project, name) if meta is None else None
    if owner is not None:
        raise FactoryKitError(f"data rm {name}: `{name}` is a split of dataset `{owner}`; remove `{owner}` "
                              f"(all its splits go with it), or re-import {owner} without that split")
    datasets = [name]
    if meta is not None:  # its splits, unless another import has taken a name over since
        datasets += [n for n in meta.get("registered") or [] if n != name and store.read_meta(project, n) is None
                     and _owner(project, n) in (None, name)]
    done = Removed(name, cleaned=cleaned, used_by=recipes_using(project, datasets))
    if done.used_by and not force:
        raise FactoryKitError(f"data rm {name}: used by {'; '.join(done.used_by)}; take it out of "
                              f"{'that recipe' if len(done.used_by) == 1 else 'those recipes'} first, or pass --force")
    outputs = commit.Outputs(project, name)
    files = _files(project, name, datasets) if meta is not None else []
    for f in files:
        outputs.delete(f)
    outputs.drop = [n for n in datasets if n in info]
    if meta is None and isinstance(info[name], dict) and info[name].get("file_name"):
        done.kept.append(paths.relative(reg_dir / info[name]["file_name"], project))
    outputs.commit()
    done.files = [paths.relative(f, project) for f in files]
    done.entries = list(outputs.drop)
    for n in datasets:  # `data stats` output: derived, and stale without the dataset
        stats = paths.data_dir(project) / "stats" / n
        if stats.is_dir():
            shutil.rmtree(stats)
            done.files.append(paths.relative(stats, project) + "/")
    return done
