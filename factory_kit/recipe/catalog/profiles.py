"""The table of training methods, stages and hardware profiles (``profiles.yaml``), typed.

``profiles.yaml`` holds what each `method:`, `stage:` and `hardware:` value renders, needs,
forbids, shows in `factory-kit ls` and maps to in the web UI; this module only loads and
checks it, so a typo in the table fails here naming the row and key. Like ``models.yaml``,
the table can be replaced for one process by a folder named in ``$FACTORY_KIT_CATALOG``
(see :func:`catalog_file`). No torch, no llamafactory: render reads this on its hot path.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from factory_kit.core.errors import FactoryKitError
from factory_kit.core.paths import CATALOG_DIR

CATALOG_ENV = "FACTORY_KIT_CATALOG"
KINDS = ("methods", "stages", "hardware")
DATA_KINDS = ("pt", "sft", "prompts", "ranking", "kto")
NEW_KEYS = ("datasets", "thinking_datasets", "train", "recipe")  # what a row's `new:` may hold
FACTS = ("method", "stage", "hardware", "adapter", "quantised", "quant_bits", "predict", "eval", "params_b",
         "nodes", "master_addr", "distributed", "reward_model_type")


def catalog_file(name: str) -> Path:
    """The catalog file ``name`` (models.yaml, profiles.yaml): the one in the folder named by
    ``$FACTORY_KIT_CATALOG`` when it holds that file, else the shipped one. Lets a user (or a
    test) try a new model family or hardware profile without touching the installed package."""
    folder = os.environ.get(CATALOG_ENV)
    if folder:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise FactoryKitError(f"${CATALOG_ENV}={folder}: not a folder; point it at a folder holding "
                                  "models.yaml and/or profiles.yaml, or unset it")
        if (path / name).is_file():
            return path / name
    return CATALOG_DIR / name


@dataclass(frozen=True)
class Rule:
    """One combination a row forbids: every fact in ``when`` holds -> ``reason`` is the error."""

    when: dict = field(hash=False)
    reason: str = ""

    def holds(self, facts: dict[str, Any]) -> bool:
        return all(_matches(facts.get(name), want) for name, want in self.when.items())

    def message(self, facts: dict[str, Any]) -> str:
        return self.reason.format(**facts)


def _matches(value: Any, want: Any) -> bool:
    if isinstance(want, dict):  # {over: n} / {under: n}
        number = value or 0
        return ("over" not in want or number > want["over"]) and ("under" not in want or number < want["under"])
    if isinstance(want, list):
        return value in want
    return value == want


@dataclass(frozen=True)
class Row:
    """What every method, stage and hardware row has (see the head of profiles.yaml)."""

    name: str
    description: str
    template: str = ""  # templates/train/<kind>_<template>.yaml.j2; the row's name when empty
    keys: dict = field(default_factory=dict, hash=False)
    needs: str = ""
    packages: dict = field(default_factory=dict, hash=False)  # pip requirement -> fix
    forbids: tuple[Rule, ...] = ()
    warns: tuple[Rule, ...] = ()  # like forbids, but `check` warns and goes on (memory-unsafe, say)
    new: dict = field(default_factory=dict, hash=False)
    webui: dict = field(default_factory=dict, hash=False)

    @property
    def part(self) -> str:
        return self.template or self.name


@dataclass(frozen=True)
class Method(Row):
    finetuning_type: str = "lora"
    adapter: bool = True
    quantised: bool = False


@dataclass(frozen=True)
class Stage(Row):
    data: str = "sft"
    reward_model: str = ""  # the stage that trains the reward model this one scores with ("" = none)
    evaluates: bool = True
    think_targets: bool = False


@dataclass(frozen=True)
class Hardware(Row):
    distributed: bool = False
    deepspeed: dict | None = field(default=None, hash=False)  # {stage: 2|3, offload: [optimizer, param]}
    env: dict = field(default_factory=dict, hash=False)
    gpu: str = ""  # catalog/gpus.yaml row `check` sizes recipes against (a recipe's `nodes.gpu` wins)

    @property
    def zero_stage(self) -> int:
        return int((self.deepspeed or {}).get("stage") or 0)


ROW_TYPES: dict[str, type[Row]] = {"methods": Method, "stages": Stage, "hardware": Hardware}


@dataclass(frozen=True)
class Profiles:
    methods: dict[str, Method]
    stages: dict[str, Stage]
    hardware: dict[str, Hardware]
    path: Path


def _row(path: Path, kind: str, name: str, entry: Any) -> Row:
    cls = ROW_TYPES[kind]
    where = f"{path}: {kind}.{name}"
    if not isinstance(entry, dict):
        raise FactoryKitError(f"{where}: a row is a mapping of keys (description, template, ...)")
    known = [f.name for f in fields(cls) if f.name != "name"]
    for key in entry:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else f"; known: {', '.join(known)}"
            raise FactoryKitError(f"{where}: unknown key `{key}`{hint}")
    if not entry.get("description"):
        raise FactoryKitError(f"{where}: needs a `description` (shown by `factory-kit ls`)")
    values = {**entry, "forbids": _rules(where, "forbids", entry), "warns": _rules(where, "warns", entry)}
    unknown_new = [k for k in values.get("new") or {} if k not in NEW_KEYS]
    if unknown_new:
        raise FactoryKitError(f"{where}: `new` has unknown key `{unknown_new[0]}`; it may have {', '.join(NEW_KEYS)}")
    for key in ("keys", "packages", "new", "webui", "env"):
        if key in values and not isinstance(values[key] or {}, dict):
            raise FactoryKitError(f"{where}: `{key}` must be a mapping")
        if key in values:
            values[key] = dict(values[key] or {})
    if kind == "stages" and values.get("data", "sft") not in DATA_KINDS:
        raise FactoryKitError(f"{where}: `data: {values.get('data')}` is not one of {', '.join(DATA_KINDS)}")
    if kind == "hardware" and values.get("deepspeed") is not None:
        ds = values["deepspeed"]
        if not isinstance(ds, dict) or ds.get("stage") not in (0, 1, 2, 3):
            raise FactoryKitError(f"{where}: `deepspeed` needs `stage: 0-3` (and optionally `offload`)")
        bad = [o for o in ds.get("offload") or [] if o not in ("optimizer", "param")]
        if bad or (ds.get("stage") != 3 and "param" in (ds.get("offload") or [])):
            raise FactoryKitError(f"{where}: `deepspeed.offload` lists optimizer and/or param (param needs stage 3)")
        values["deepspeed"] = {"stage": ds["stage"], "offload": list(ds.get("offload") or [])}
    return cls(name=str(name), **values)


def _rules(where: str, kind: str, entry: dict) -> tuple[Rule, ...]:
    rules = []
    for rule in entry.get(kind) or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("when"), dict) or not rule.get("reason"):
            raise FactoryKitError(f"{where}: each `{kind}` item needs `when` (a mapping of facts) and `reason`")
        unknown = [f for f in rule["when"] if f not in FACTS]
        if unknown:
            raise FactoryKitError(f"{where}: `{kind}` names unknown fact `{unknown[0]}`; facts: {', '.join(FACTS)}")
        rules.append(Rule(dict(rule["when"]), " ".join(str(rule["reason"]).split())))
    return tuple(rules)


def load(path: Path) -> Profiles:
    """Parse and check a profiles.yaml; a typo fails here, naming the row and key."""
    from ruamel.yaml import YAML  # YAML 1.2, as models.yaml and recipes

    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except Exception as exc:  # ruamel raises many types; all mean "fix the file"
        raise FactoryKitError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    extra = [k for k in doc if k not in KINDS]
    if extra:
        raise FactoryKitError(f"{path}: unknown section `{extra[0]}`; the sections are {', '.join(KINDS)}")
    tables: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        rows = doc.get(kind) or {}
        if not rows:
            raise FactoryKitError(f"{path}: `{kind}` has no rows")
        tables[kind] = {str(name): _row(path, kind, name, entry) for name, entry in rows.items()}
    return Profiles(tables["methods"], tables["stages"], tables["hardware"], path)


@lru_cache(maxsize=4)
def _cached(path: Path, mtime: float) -> Profiles:
    return load(path)


def table() -> Profiles:
    """The table in use (the shipped one unless ``$FACTORY_KIT_CATALOG`` holds another)."""
    path = catalog_file("profiles.yaml")
    return _cached(path, path.stat().st_mtime)


def methods() -> dict[str, Method]:
    return table().methods


def stages() -> dict[str, Stage]:
    return table().stages


def hardware() -> dict[str, Hardware]:
    return table().hardware
