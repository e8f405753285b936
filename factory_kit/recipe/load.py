"""Recipes: short YAML files a user keeps in git, loaded into one checked, merged mapping.

- a recipe is named by path, or by bare name (``tcm-lora``): the project's recipes/ first, then the
  shipped ones (``locate``).
- ``extends``: a parent recipe (path relative to the child); maps merge, lists replace.
- overrides: ``--set train.learning_rate=5e-5`` (values parsed as YAML 1.2, so typed).
- schema (the fields in ``recipe/schema.py``): unknown keys fail with the file, the key and a
  "did you mean" suggestion; wrong types fail with the expected type, values out of range with
  the range; keys that do nothing yet are refused with what to use instead. YAML 1.2 reads
  ``1e-4`` as a number.
Every value remembers where it came from (file or ``--set``) for ``factory-kit show``.
"""

from __future__ import annotations

import copy
import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog, schema

MAX_EXTENDS_DEPTH = 20


def fields() -> tuple[schema.Field, ...]:
    """The recipe's keys (recipe/schema.py: typed, a help line each), with the `method`, `stage` and
    `hardware` choices read from the profile table now (``$FACTORY_KIT_CATALOG`` may add rows)."""
    return schema.bind({"methods": tuple(catalog.methods()), "stages": tuple(catalog.stages()),
                        "hardware": tuple(catalog.hardware())})


def yaml_loader() -> YAML:
    """YAML 1.2 safe loader: ``1e-4`` is a float, ``yes`` is a string."""
    y = YAML(typ="safe", pure=True)
    return y


def parse_value(text: str) -> Any:
    """Type a ``--set`` value the way YAML would (``5e-5`` -> float, ``true`` -> bool)."""
    try:
        return yaml_loader().load(io.StringIO(text)) if text.strip() else ""
    except YAMLError:
        return text


@dataclass
class Recipe:
    path: Path
    name: str
    data: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)  # "train.epochs" -> "recipes/x.yaml"
    chain: list[Path] = field(default_factory=list)

    def where(self, dotted: str) -> str:
        """The file (or --set) that set ``dotted`` or any key under it; the recipe itself otherwise."""
        found = self.origins.get(dotted)
        if found and found != "default":
            return found
        for key, origin in self.origins.items():
            if key.startswith(dotted + ".") and origin != "default":
                return origin
        return str(self.path)

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FactoryKitError(f"{path}: recipe not found") from None
    except IsADirectoryError:
        raise FactoryKitError(f"{path}: is a folder, not a recipe file; name a .yaml file in it "
                              "(`factory-kit ls recipes` lists them)") from None
    except UnicodeDecodeError:
        raise FactoryKitError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    try:
        data = yaml_loader().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FactoryKitError(f"{path}{where}: invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FactoryKitError(f"{path}: a recipe must be a YAML mapping of keys, got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict, origins: dict[str, str], source: str, prefix: str = "") -> dict:
    """Maps merge recursively, everything else (lists included) replaces."""
    out = dict(base)
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origins, source, dotted + ".")
        else:
            out[key] = copy.deepcopy(value)
            for k in [k for k in origins if k.startswith(dotted + ".")]:
                del origins[k]
            _record(origins, dotted, value, source)
    return out


def _record(origins: dict[str, str], dotted: str, value: Any, source: str) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _record(origins, f"{dotted}.{k}", v, source)
    else:
        origins[dotted] = source


def display_path(path: Path) -> str:
    """How recipe paths are named in origins and messages: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Located:
    """Where a recipe argument led: ``source`` is "path" (a file named as given), "project" (a bare
    name found in the project's recipes/) or "shipped" (a bare name found among the shipped recipes)."""
    path: Path
    source: str

    def note(self) -> str | None:
        """The one line that says which recipe a bare name picked (None for a path)."""
        if self.source == "shipped":
            stem = self.path.stem
            return f"using shipped recipe {stem} (`factory-kit cp {stem}` to edit it)"
        if self.source == "project":
            return f"using project recipe {display_path(self.path)}"
        return None


YAML_SUFFIXES = (".yaml", ".yml")


def locate(name: str | Path, project: Path | None = None) -> Located:
    """The file a recipe argument means. A path that exists is taken as given (``.yaml`` may be left
    off); a bare name (no folder part: ``tcm-lora``, ``tcm-lora.yaml``) is the project's
    ``recipes/NAME.yaml`` first, then the shipped recipe of that name."""
    text = str(name)
    given = Path(text).expanduser()
    has_suffix = given.suffix in YAML_SUFFIXES  # `qwen2.5-lora` has no YAML suffix
    if given.exists():
        return Located(given, "path")  # a folder too: _read_yaml says what to name instead
    if not has_suffix and given.with_name(given.name + ".yaml").is_file():
        return Located(given.with_name(given.name + ".yaml"), "path")
    project = Path(project or paths.project_dir())
    file_name = given.name if has_suffix else f"{given.name}.yaml"
    if "/" not in text and "\\" not in text:
        for source, folder in (("project", project / "recipes"), ("shipped", paths.SHIPPED_RECIPES_DIR)):
            if (folder / file_name).is_file():
                return Located(Path(display_path(folder / file_name)), source)
        folders = (project / "recipes", paths.SHIPPED_RECIPES_DIR)
        known = sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})
        close = difflib.get_close_matches(Path(file_name).stem, known, n=1, cutoff=0.6)
        raise FactoryKitError(f"{text}: recipe not found (looked for {text} here, in {display_path(folders[0])}/ "
                              "and among the shipped recipes)" + (f"; did you mean `{close[0]}`?" if close else "")
                              + "; `factory-kit ls recipes` lists them")
    shipped = paths.SHIPPED_RECIPES_DIR / file_name
    if shipped.is_file():
        raise FactoryKitError(f"{text}: recipe not found; factory-kit ships a recipe of that name: use the bare name "
                              f"`{shipped.stem}`, or `factory-kit cp {shipped.stem}` to copy it into this project")
    raise FactoryKitError(f"{text}: recipe not found; `factory-kit ls recipes` lists them")


def _load_chain(path: Path, seen: list[Path]) -> list[tuple[Path, dict]]:
    path = path.resolve()
    if path in seen:
        cycle = " -> ".join(display_path(p) for p in [*seen, path])
        raise FactoryKitError(f"{display_path(seen[-1])}: `extends` makes a cycle ({cycle}); remove one link")
    if len(seen) > MAX_EXTENDS_DEPTH:
        raise FactoryKitError(f"{display_path(path)}: `extends` chain deeper than {MAX_EXTENDS_DEPTH}")
    data = _read_yaml(path)
    parent = data.get("extends")
    chain: list[tuple[Path, dict]] = []
    if parent is not None:
        if not isinstance(parent, str):
            raise FactoryKitError(f"{display_path(path)}: `extends` must be one file name, got {parent!r}")
        parent_path = (path.parent / parent)
        if not parent_path.exists():
            shipped = paths.SHIPPED_RECIPES_DIR / parent
            hint = (f"; factory-kit ships `{parent}`: `factory-kit cp {shipped.stem}` copies it there"
                    if shipped.is_file() and "/" not in parent else "")
            raise FactoryKitError(
                f"{display_path(path)}: `extends: {parent}` not found (looked for {display_path(parent_path)}); "
                f"paths are relative to the recipe's folder{hint}"
            )
        chain = _load_chain(parent_path, [*seen, path])
    return [*chain, (path, data)]


def _initials(name: str) -> str:
    return "".join(word[0] for word in name.split("_") if word)


def did_you_mean(dotted: str, level: list[str], everywhere: list[str]) -> str | None:
    """The recipe key an unknown ``dotted`` key most likely meant: a known alias (``lr``, LLaMA-Factory's
    ``lora_rank``), a close name in the same section, the same name in another section (``train.rank`` ->
    ``lora.rank``), a close dotted key, or a key whose initials it is (``lr``)."""
    prefix, _, name = dotted.rpartition(".")
    for probe in (dotted, name):
        if probe in schema.ALIASES:
            return schema.ALIASES[probe]
    close = difflib.get_close_matches(name, level, n=1, cutoff=0.6)
    if close:
        return f"{prefix}.{close[0]}" if prefix else close[0]
    same = [k for k in everywhere if k.rpartition(".")[2] == name]
    close = same or difflib.get_close_matches(dotted, everywhere, n=1, cutoff=0.75)
    if close:
        return close[0]
    by_initials = [k for k in everywhere if "_" in k.rpartition(".")[2] and _initials(k.rpartition(".")[2]) == name]
    return by_initials[0] if len(by_initials) == 1 else None


def _suggest(dotted: str, level: list[str]) -> str:
    guess = did_you_mean(dotted, level, _all_keys())
    return f"; did you mean `{guess}`?" if guess else f"; known keys here: {', '.join(level)}"


def _all_keys() -> list[str]:
    """Every key a recipe may set, dotted (refused keys are known, not offered)."""
    return [x.key for x in schema.FIELDS if not x.refused]


def _type_name(types: tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             dict: "a mapping"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _accepted(node: dict) -> list[str]:
    """The keys a recipe may set at this level (refused keys are known, not offered)."""
    return [k for k, v in node.items() if isinstance(v, dict) or not v.refused]


def _validate(data: dict, node: dict, origins: dict[str, str], prefix: str = "") -> None:
    """Keys, types and choices against the field tree; a refused key says what to use instead."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        where = origins.get(dotted) or next(
            (v for k, v in origins.items() if k.startswith(dotted + ".")), "recipe"
        )
        if key not in node:
            raise FactoryKitError(f"{where}: unknown key `{dotted}`{_suggest(dotted, _accepted(node))}")
        spec = node[key]
        if isinstance(spec, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise FactoryKitError(f"{where}: `{dotted}` must be a mapping of {', '.join(_accepted(spec))}")
            _validate(value, spec, origins, dotted + ".")
            continue
        if value is None:
            continue
        if spec.refused:
            raise FactoryKitError(f"{where}: `{dotted}` {spec.refused}")
        types, choices = spec.types, spec.choices
        if types == (list,) and isinstance(value, str):  # `datasets: a` / `--set datasets=a,b`
            value = data[key] = as_list(value, spec.items)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            hint = " (write numbers unquoted, e.g. 1.0e-4)" if isinstance(value, str) and float in types else ""
            raise FactoryKitError(
                f"{where}: `{dotted}` must be {_type_name(types)}, got {value!r}{hint}"
            )
        if spec.items and isinstance(value, list):
            for item in value:
                if not isinstance(item, spec.items) or isinstance(item, bool):
                    kind = "names" if str in spec.items else "numbers"
                    raise FactoryKitError(f"{where}: `{dotted}` must be a list of {kind}, got {item!r} in it "
                                          "(write `[a, b]`, or `a,b` with --set)")
        if choices and value not in choices:
            value = data[key] = _choice(where, dotted, value, choices)


def as_list(text: str, items: tuple[type, ...] | None) -> list:
    """A list key written as one string: ``a`` -> ``[a]``, ``a,b`` -> ``[a, b]`` (YAML-typed items,
    ``0.8,0.2`` -> numbers, unless the items are names)."""
    parts = [p.strip() for p in text.strip().strip("[]").split(",") if p.strip()]
    return parts if items == (str,) else [parse_value(p) for p in parts]


def _choice(where: str, dotted: str, value: Any, choices: tuple) -> Any:
    """``value`` as one of ``choices``, matched without regard to case (`LoRA` -> `lora`); else one line
    with the known values and, when one is close, "did you mean"."""
    if isinstance(value, str):
        same = [c for c in choices if str(c).lower() == value.lower()]
        if same:
            return same[0]
    close = difflib.get_close_matches(str(value).lower(), [str(c) for c in choices], n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close and isinstance(value, str) else ""
    raise FactoryKitError(f"{where}: `{dotted}: {value}` is not one of the known values "
                          f"({', '.join(map(str, choices))}){hint}")


def _with_defaults(data: dict, node: dict) -> dict:
    """Every accepted key, in schema order: the recipe's value, else the field's default."""
    out: dict[str, Any] = {}
    for key, spec in node.items():
        if isinstance(spec, dict):
            out[key] = _with_defaults(data.get(key) or {}, spec)
        elif not spec.refused:
            value = data.get(key)
            out[key] = copy.deepcopy(spec.default) if value is None else value
    return out


def apply_override(data: dict, origins: dict[str, str], assignment: str) -> None:
    """Apply one ``key.path=value`` override in place."""
    if "=" not in assignment:
        raise FactoryKitError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.learning_rate=5e-5")
    dotted, text = assignment.split("=", 1)
    dotted = dotted.strip()
    if dotted == "extends":
        raise FactoryKitError(f"--set {assignment}: `extends` belongs in the recipe file (it decides which "
                              "files are read); write a small recipe that extends the one you want")
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise FactoryKitError(f"--set {dotted}: `{part}` is not a section")
        node = child
    value = parse_value(text)
    node[parts[-1]] = value
    _record(origins, dotted, value, "--set")


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe with its ``extends`` chain and overrides, validated, defaults filled."""
    path = locate(path).path
    chain = _load_chain(path, [])
    origins: dict[str, str] = {}
    merged: dict[str, Any] = {}
    for file, data in chain:
        merged = _merge(merged, data, origins, display_path(file))
    merged.pop("extends", None)
    origins.pop("extends", None)
    for assignment in overrides:
        apply_override(merged, origins, assignment)
    top = display_path(path)
    tree = schema.tree(fields())
    _validate(merged, tree, origins)
    for key in (x.key for x in schema.FIELDS if x.required):
        if merged.get(key) in (None, "", []):
            raise FactoryKitError(f"{top}: `{key}` is required (set it in the recipe or a parent it extends)")
    full = _with_defaults(merged, tree)
    _check_ranges(full, origins, top)
    for dotted in _leaves(full):
        origins.setdefault(dotted, "default")
    return Recipe(path=path, name=path.stem, data=full, origins=origins, chain=[p for p, _ in chain])


def _check_ranges(data: dict, origins: dict[str, str], top: str) -> None:
    def value(dotted: str):
        section, _, key = dotted.rpartition(".")
        return (data.get(section) or {}).get(key) if section else data.get(key)

    import math

    for dotted in _leaves(data):
        v = value(dotted)
        if isinstance(v, float) and not math.isfinite(v):
            raise FactoryKitError(f"{origins.get(dotted, top)}: `{dotted}: {v}` must be a finite number")
    for rule in schema.RANGE_ORDER:  # each field's range (schema.py): > 0, a fraction, a port...
        for x in schema.FIELDS:
            v = value(x.key)
            if x.range is rule and v is not None and not rule.test(v):
                raise FactoryKitError(f"{origins.get(x.key, top)}: `{x.key}: {v}` {rule.message}")


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict) and value and key != "llamafactory":
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
