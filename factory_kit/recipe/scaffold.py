"""`factory-kit new`: a short starting recipe, its values from the catalog, checked before it is kept.

The values are layered from the catalog (knowledge is data): the model family's ``new``
(models.yaml: epochs, batch size; its ``cutoff_len``), the method, stage and hardware rows'
``new`` (profiles.yaml: LLaMA-Factory's example values per stage, e.g. DPO at 5e-6), then the
family's ``new_thinking`` when the recipe will reason (long answers need a shorter context x batch
and a long ``max_new_tokens``). Where layers disagree on ``learning_rate``, ``cutoff_len`` or
``batch_size`` the smallest wins: the safe one. Whether the data reasons comes from the datasets
themselves (their import record, else their first rows), so a hybrid model (Qwen3) trained on
chain-of-thought data gets ``thinking: true``.

The rule: what `new` writes passes `factory-kit check`. The recipe is checked as it is written;
a combination the check refuses is refused here, naming the fix, and nothing is left behind.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.yamlio import to_yaml
from factory_kit.recipe import catalog, checks, schema
from factory_kit.recipe.load import display_path, load

SMALLEST_WINS = ("train.learning_rate", "train.cutoff_len", "train.batch_size")
TABLES = {"method": catalog.methods, "stage": catalog.stages, "hardware": catalog.hardware}


@dataclass
class Scaffolded:
    path: Path
    also: list[Path] = field(default_factory=list)  # recipes written with it (a PPO recipe's reward model)
    warnings: list[str] = field(default_factory=list)  # what `check` warns about (memory, reasoning data...)
    pending: str | None = None  # why `check` fails until the user acts (a dataset not imported yet)


def choose(label: str, value: str) -> str:
    """A method, stage or hardware name as the catalog spells it, matched without regard to case."""
    options = TABLES[label]()
    found = next((name for name in options if name.lower() == value.strip().lower()), None)
    if found is None:
        raise FactoryKitError(f"--{label} {value!r}: choose one of {', '.join(options)} (`factory-kit ls {label}"
                              f"{'s' if label != 'hardware' else ''}`)")
    return found


def scaffold(model: str, method: str, stage: str, hardware: str, datasets: list[str],
             out: Path | None, name: str | None) -> Scaffolded:
    """Write a starting recipe (and, for a stage that scores with a reward model, that model's recipe
    when none fits yet), check it, and return what `check` says. Refused combinations write nothing."""
    method, stage, hardware = choose("method", method), choose("stage", stage), choose("hardware", hardware)
    project = paths.project_dir()
    catalog.resolve(model, base_dir=project)  # an unknown model or a family without a template fails first
    name = name or f"{Path(model).name.lower()}-{method}-{stage}"
    out = out or project / "recipes" / f"{name}.yaml"
    if out.exists():
        raise FactoryKitError(f"{out} already exists; choose another --name or --out")
    written: list[Path] = []
    try:
        _write(model, method, stage, hardware, datasets, out, name, project, written)
        return _checked(out, written)
    except FactoryKitError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise FactoryKitError(f"{exc} (`factory-kit new` wrote nothing: choose another --method, --stage or "
                              "--hardware, or edit a recipe by hand)") from None


def _write(model: str, method: str, stage: str, hardware: str, datasets: list[str], out: Path, name: str,
           project: Path, written: list[Path]) -> None:
    info = catalog.resolve(model, base_dir=project)
    fam = info.family
    rows = {"method": catalog.methods()[method], "stage": catalog.stages()[stage],
            "hardware": catalog.hardware()[hardware]}
    srow = rows["stage"]
    marker = fam.think_markers[0] if fam.think_markers else "<think>"
    samples = not datasets
    if samples:  # the stage's sample data; a model that always reasons gets reasoning samples
        reasoning_samples = fam.thinking == "always" and srow.new.get("thinking_datasets")
        datasets = list(reasoning_samples or srow.new.get("datasets") or ["tcm_qa_train"])
    data_reasons = srow.think_targets and (
        (samples and fam.thinking == "always" and bool(srow.new.get("thinking_datasets")))
        or any(checks.reasoning_of(project, datasets, marker).values()))
    set_thinking = fam.thinking == "optional" and data_reasons
    reasons = srow.data != "pt" and (fam.thinking == "always" or data_reasons)
    fill = {"lora_target": fam.lora_target, "cutoff_len": fam.cutoff_len, "reward_model": ""}
    if srow.reward_model:
        fill["reward_model"] = _reward_recipe(model, method, hardware, srow.reward_model, out.parent, project,
                                              written)
    values: dict[str, Any] = {"train": {"cutoff_len": fam.cutoff_len}}
    layers = [fam.new, *({"train": row.new.get("train") or {}, **(row.new.get("recipe") or {})}
                         for row in rows.values())]
    for layer in [*layers, *([fam.new_thinking] if reasons else [])]:
        _layer(values, layer)
    head = [
        f"# {name}: {method} {stage} on {model} ({fam.name}, template {fam.template}).",
        "# Scaffolded by `factory-kit new` from the catalog; `factory-kit show` prints every value and where",
        "# it came from, `factory-kit ls keys` what each key means.",
        f"description: {to_yaml(f'{method} {stage} on {model}')}",
        f"model: {to_yaml(model)}",
        f"method: {method}",
        f"stage: {stage}",
        f"hardware: {hardware}",
        *(["thinking: true  # the data carries reasoning (set from the datasets)"] if set_thinking else []),
        f"datasets: [{', '.join(to_yaml(d) for d in datasets)}]",
    ]
    body = [f"{key}: {_flow(value, fill)}" for key, value in _in_schema_order(values).items()]
    written.append(io.write_text(out, "\n".join(head + body) + "\n"))


def _in_schema_order(values: dict[str, Any]) -> dict[str, Any]:
    """Each section's keys in the order `factory-kit ls keys` lists them (epochs, learning_rate, ...)."""
    order = {x.key: i for i, x in enumerate(schema.FIELDS)}
    return {key: dict(sorted(value.items(), key=lambda kv: order.get(f"{key}.{kv[0]}", len(order))))
            if isinstance(value, dict) else value for key, value in values.items()}


def _layer(into: dict[str, Any], layer: dict[str, Any], prefix: str = "") -> None:
    """Merge one layer of recipe keys: maps merge, other values replace, except the SMALLEST_WINS keys."""
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _layer(into[key], value, dotted + ".")
        elif dotted in SMALLEST_WINS and isinstance(into.get(key), (int, float)) and isinstance(value, (int, float)):
            into[key] = min(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _reward_recipe(model: str, method: str, hardware: str, rm_stage: str, folder: Path, project: Path,
                   written: list[Path]) -> str:
    """The reward-model recipe a PPO recipe names: one next to it that trains a `stage: rm` model PPO can
    load (the same base model; an adapter only for an adapter policy; the same method and hardware first),
    else a new one `new` writes."""
    adapter = catalog.methods()[method].adapter
    fits: list[tuple[int, str]] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            if model not in path.read_text(encoding="utf-8"):
                continue  # cheap: a recipe for this model names it
            rm = load(path)
        except (FactoryKitError, OSError, UnicodeDecodeError):
            continue  # shared defaults (base.yaml) and broken files are no reward model
        rm_adapter = catalog.methods()[rm.data["method"]].adapter
        if rm.data["stage"] == rm_stage and rm.data["model"] == model and (adapter or not rm_adapter):
            fits.append(((rm.data["method"] != method) + (rm.data["hardware"] != hardware), path.name))
    if fits:  # the closest: same method and hardware first
        return min(fits)[1]
    name = f"{Path(model).name.lower()}-{method}-{rm_stage}"
    path = folder / f"{name}.yaml"
    if path.exists():
        raise FactoryKitError(f"{path} exists but is not a `stage: {rm_stage}` recipe for {model} that PPO can "
                              "use; set `reward_model:` by hand")
    _write(model, method, rm_stage, hardware, [], path, name, project, written)
    return path.name


def _checked(path: Path, written: list[Path]) -> Scaffolded:
    """Check what was written as `factory-kit check` does: a failure without data is refused (raised); a
    failure only about the data (not imported yet) is kept as ``pending``, with its fix."""
    from factory_kit.recipe.render import render

    for other in written:
        if other != path:
            render(display_path(other), write=False, check_data=False)
    result = Scaffolded(path, [p for p in written if p != path])
    try:
        result.warnings = render(display_path(path), write=False).warnings
    except FactoryKitError as exc:
        result.warnings = render(display_path(path), write=False, check_data=False).warnings
        result.pending = str(exc)
    return result


def _flow(value: Any, fill: dict[str, Any]) -> str:
    """A recipe value as one line of flow YAML; "{lora_target}" and the like filled in."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v, fill)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v, fill) for v in value) + "]"
    if isinstance(value, str):
        value = value.format(**fill)
    return to_yaml(value)
