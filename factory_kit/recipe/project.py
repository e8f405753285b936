"""A project of one's own (torchtune's `cp`, and an `init` that lays out the folders): the shipped
recipes copied where a user can edit them, the registry LLaMA-Factory reads, and a .gitignore.

Nothing here replaces a user's file without ``force``; the dataset registry is never replaced.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.load import YAML_SUFFIXES, yaml_loader

GITIGNORE = """\
# factory-kit: generated or large, rebuilt by the commands that write them
build/
outputs/
models/
saves/
.cache/
llamaboard_config/
llamaboard_cache/
dataset_info/.dataset_info.lock
data/**/.*.tmp
# Imported datasets can be large and hold private (medical) text; uncomment to keep them out of git:
# data/
# factory-kit synth: the journal's lock file; the journal itself (synth/journal.jsonl) holds every paid
# answer (your cache; redacted text) and synth/NAME/ the generated rows: uncomment to keep them out too
synth/*.lock
# synth/
"""

README = """\
# {name}

A [factory-kit](https://pypi.org/project/factory-kit/) project: fine-tuning with LLaMA-Factory.

- `recipes/`: recipes to edit (copied from the shipped ones; `factory-kit ls recipes` lists both)
- `data/`: imported datasets; `dataset_info/dataset_info.json`: the registry LLaMA-Factory reads
- `build/`, `outputs/`, `models/`: rendered configs, training runs, local models (git-ignored)

Next:

```
factory-kit demo                                            # the whole flow on a tiny CPU model
factory-kit data import my_qa.jsonl --name my_qa --split 0.9,0.1
factory-kit new --model Qwen/Qwen2.5-7B-Instruct --dataset my_qa_train --name my-lora
factory-kit check my-lora
factory-kit train my-lora
factory-kit eval my-lora --baseline
factory-kit report my-lora
```
"""


@dataclass
class Written:
    """What `init` / `cp` did, for the command to print."""
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def shipped_recipe(name: str) -> Path:
    """The shipped recipe called ``name`` (``tcm-lora`` or ``tcm-lora.yaml``)."""
    stem = Path(name).stem if Path(name).suffix in YAML_SUFFIXES else name
    path = paths.SHIPPED_RECIPES_DIR / f"{stem}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        known = ", ".join(p.stem for p in sorted(paths.SHIPPED_RECIPES_DIR.glob("*.yaml")))
        raise FactoryKitError(f"{name}: no shipped recipe of that name; shipped: {known}")
    return path


LINKS = ("extends", "reward_model")  # keys that name another recipe file, relative to this one


def _linked(path: Path) -> list[Path]:
    """The shipped files ``path`` needs beside it: what it ``extends`` (and their parents), and a
    ``reward_model`` recipe (``tcm-ppo.yaml`` -> ``base.yaml``, ``tcm-rm.yaml``)."""
    found: list[Path] = []
    todo = [path]
    while todo:
        current = todo.pop(0)
        data = yaml_loader().load(current.read_text(encoding="utf-8")) or {}
        for key in LINKS:
            value = data.get(key) if isinstance(data, dict) else None
            if not isinstance(value, str) or Path(value).suffix not in YAML_SUFFIXES:
                continue  # a trained reward-model folder, an API: nothing to copy
            linked = (current.parent / value).resolve()
            if linked.is_file() and linked != path and linked not in found:
                found.append(linked)  # a broken link is `check`'s to explain; copying skips it
                todo.append(linked)
    return found


def copy_recipe(name: str, dest: Path | None = None, *, force: bool = False,
                project: Path | None = None) -> Written:
    """Copy shipped recipe ``name`` to ``dest`` (a folder, or a .yaml file; default the project's
    recipes/), and the recipes it names (``extends``, ``reward_model``) beside it unless a file of
    that name is there already."""
    source = shipped_recipe(name).resolve()
    dest = Path(dest) if dest is not None else Path(project or paths.project_dir()) / "recipes"
    target = dest if dest.suffix in YAML_SUFFIXES else dest / source.name
    if target.exists() and not force:
        raise FactoryKitError(f"{paths.relative(target, Path.cwd())} already exists; pass --force to replace it, "
                              "or name another DEST")
    done = Written()
    for parent in _linked(source):
        beside = target.parent / parent.relative_to(source.parent)
        if beside.exists():
            done.kept.append(beside)
            continue
        done.written.append(_copy(parent, beside))
    done.written.insert(0, _copy(source, target))
    return done


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def init_project(folder: Path, *, force: bool = False) -> Written:
    """Lay out a project in ``folder``: every shipped recipe in recipes/, data/, an empty but valid
    dataset_info/dataset_info.json, a .gitignore and a README with the next commands. Refuses to
    replace a file (all of them named at once) unless ``force``; an existing registry is always kept."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FactoryKitError(f"{folder}: not a folder; name a folder for the project")
    files = {folder / "recipes" / p.name: p for p in sorted(paths.SHIPPED_RECIPES_DIR.glob("*.yaml"))}
    texts = {folder / ".gitignore": GITIGNORE, folder / "README.md": README.format(name=folder.resolve().name)}
    clashes = [p for p in [*files, *texts] if p.exists()]
    if clashes and not force:
        shown = ", ".join(paths.relative(p, Path.cwd()) for p in clashes)
        raise FactoryKitError(f"{shown}: already there; pass --force to replace "
                              f"{'it' if len(clashes) == 1 else 'them'} (the dataset registry is always kept)")
    done = Written()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    registry = paths.registry_dir(folder) / "dataset_info.json"
    if registry.exists():
        done.kept.append(registry)
    else:
        done.written.append(io.write_json(registry, {}))
    for target, source in files.items():
        done.written.append(_copy(source, target))
    for target, text in texts.items():
        done.written.append(io.write_text(target, text))
    return done
