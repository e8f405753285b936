"""LLaMA-Factory's accepted arguments, as a snapshot that needs no torch to read.

``llamafactory-cli train`` parses with ``HfArgumentParser(allow_extra_keys=False)`` over
its argument dataclasses, but its own checks depend on the machine (bf16 on a CPU fails).
We check rendered configs against the dataclasses' *fields* instead: names, types, choices.
Importing ``llamafactory.hparams`` costs seconds, so the fields are snapshotted into
``catalog/lf_args.json`` (regenerate with ``python -m factory_kit.recipe.lfargs``); a test
proves the snapshot matches the installed LLaMA-Factory.
"""

from __future__ import annotations

import difflib
import enum
import functools
import json
import sys
import typing
from typing import Any

from factory_kit.core import io
from factory_kit.core.paths import CATALOG_DIR

SNAPSHOT = CATALOG_DIR / "lf_args.json"


def _describe(tp: Any) -> dict[str, Any]:
    """Reduce a dataclass field type to {"types": [...], "choices": [...]}."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        out: dict[str, Any] = {"types": [], "choices": None}
        for arg in typing.get_args(tp):
            if arg is type(None):
                out["types"].append("null")
                continue
            sub = _describe(arg)
            out["types"] += sub["types"]
            if sub["choices"]:
                out["choices"] = (out["choices"] or []) + sub["choices"]
        return out
    if origin is typing.Literal:
        choices = list(typing.get_args(tp))
        return {"types": sorted({type(c).__name__ for c in choices}), "choices": choices}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"types": ["str"], "choices": [m.value for m in tp]}
    if origin in (list, tuple):
        return {"types": ["list"], "choices": None}
    if origin is dict or tp is dict:
        return {"types": ["dict", "str"], "choices": None}
    if isinstance(tp, type):
        return {"types": [tp.__name__], "choices": None}
    return {"types": ["any"], "choices": None}


def introspect() -> dict[str, dict[str, Any]]:
    """Read the installed LLaMA-Factory's argument dataclasses (slow: imports it)."""
    import dataclasses

    from llamafactory.hparams import parser

    out = {}
    for kind, classes in {"train": parser._TRAIN_ARGS, "infer": parser._INFER_ARGS}.items():
        fields: dict[str, Any] = {}
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.init:
                    fields[f.name] = _describe(hints.get(f.name, f.type))
        for spec in fields.values():
            spec["types"] = sorted(set(spec["types"]))
        out[kind] = dict(sorted(fields.items()))
    from llamafactory.data.template import TEMPLATES

    out["templates"] = sorted(TEMPLATES)  # the chat template names `template:` may use
    return out


@functools.cache
def snapshot() -> dict[str, dict[str, Any]]:
    return json.loads(SNAPSHOT.read_text())


def _type_ok(value: Any, spec: dict[str, Any]) -> bool:
    types = spec["types"]
    if "any" in types:
        return True
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "bool" in types
    if isinstance(value, int):
        return bool({"int", "float"} & set(types))
    if isinstance(value, float):
        return "float" in types
    if isinstance(value, str):
        # HfArgumentParser converts strings for bools/numbers too, but we render typed values,
        # so a string where a number is expected means a recipe mistake ("1e-4" quoted).
        return "str" in types or "dict" in types
    if isinstance(value, (list, tuple)):
        return "list" in types or "str" in types
    if isinstance(value, dict):
        return "dict" in types
    return False


def check(config: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """Problems with ``config`` as a ``kind`` ("train" or "infer") config: (key, one-line message)."""
    fields = snapshot()[kind]
    problems = []
    for key, value in config.items():
        spec = fields.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            problems.append((key, f"`{key}` is not a LLaMA-Factory {kind} argument{hint}"))
            continue
        if not _type_ok(value, spec):
            want = "/".join(spec["types"])
            problems.append((key, f"`{key}`: expected {want}, got {type(value).__name__} {value!r}"))
            continue
        if spec["choices"] and value is not None and value not in spec["choices"]:
            choices = ", ".join(map(str, spec["choices"]))
            problems.append((key, f"`{key}`: {value!r} is not one of: {choices}"))
    return problems


if __name__ == "__main__":  # python -m factory_kit.recipe.lfargs  -> refresh the snapshot
    data = introspect()
    io.write_text(SNAPSHOT, json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} ({len(data['train'])} train, {len(data['infer'])} infer keys)", file=sys.stderr)
