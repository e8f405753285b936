"""Evaluation: benchmarks (lm-eval), generation metrics (do_predict), LLM judge, compare, report.

``run_eval`` is what ``factory-kit eval`` calls: it works out which model (+ adapter) a recipe
produced, runs the benchmarks on it (and on the base model with ``baseline``), and writes
everything under ``outputs/<recipe>/eval/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import FactoryKitError


@dataclass
class Target:
    label: str
    model: str
    adapter: str | None = None


@dataclass
class EvalPlan:
    out_dir: Path
    targets: list[Target]
    base: Target | None = None
    recipe_name: str | None = None
    mode: str = "loglikelihood"
    thinking: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    rendered: Any = None


def _local(model: str, project: Path) -> str:
    path = Path(model).expanduser()
    if not path.is_absolute():
        candidate = project / path
        if candidate.exists() or str(model).startswith((".", "models/")):
            return str(candidate)
        return model  # an HF id
    return str(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def default_mode(model: str, project: Path, thinking: bool | None = None) -> tuple[str, str | None]:
    """generate for reasoning models (catalog thinking: always, or optional and switched on)."""
    try:
        from .. import catalog

        family_thinking = catalog.resolve(model, base_dir=project).family.thinking
    except Exception:  # unknown model / catalog not available: score by log-likelihood
        return "loglikelihood", None
    if family_thinking == "always" or (family_thinking == "optional" and thinking):
        return "generate", family_thinking
    return "loglikelihood", family_thinking


def plan(recipe: str | None, overrides: tuple[str, ...] = (), *, merged: bool = False, model: str | None = None,
         adapter: str | None = None, baseline: bool = False, out: str | None = None,
         project: Path | None = None) -> EvalPlan:
    """Which model(s) to evaluate, and where results go."""
    project = project or paths.project_dir()
    if recipe is None and model is None:
        raise FactoryKitError("name a RECIPE, or give --model PATH (and optionally --adapter PATH)")
    if adapter and not model and not recipe:
        raise FactoryKitError("--adapter needs --model (the base model it was trained on) or a RECIPE")
    if merged and model:
        raise FactoryKitError("--merged evaluates the recipe's exported model; it cannot be combined with --model")
    rendered = None
    ctx: dict[str, Any] = {}
    if recipe is not None:
        from ..render import render

        rendered = render(recipe, overrides, project=project, write=True, check_data=False)
        ctx = rendered.context
    base_model = _local(model or ctx["model"], project)
    if model or adapter:
        tuned_model = base_model
        tuned_adapter = None
        if adapter:
            tuned_adapter = str(Path(adapter).expanduser() if Path(adapter).expanduser().is_absolute()
                                else project / adapter)
            if not Path(tuned_adapter).exists():
                raise FactoryKitError(f"adapter {adapter} does not exist ({tuned_adapter})")
        label = "model" if not tuned_adapter else "adapter"
        if model and not adapter:
            if baseline and not recipe:
                raise FactoryKitError("--baseline needs a fine-tuned target: a RECIPE or --adapter")
        target = Target(label if not recipe else "finetuned", tuned_model, tuned_adapter)
    elif merged:
        if not ctx["adapter"]:
            raise FactoryKitError(f"{recipe}: --merged is for adapter methods (lora/qlora/dora); "
                                  f"method {ctx['method']} already trains the whole model")
        export_dir = project / ctx["export"]["dir"]
        if not (export_dir / "config.json").is_file():
            raise FactoryKitError(f"{ctx['export']['dir']}: no merged model yet; run `factory-kit export {recipe}` first")
        target = Target("merged", str(export_dir))
    else:
        trained = project / ctx["output_dir"]
        if ctx["adapter"]:
            if not (trained / "adapter_config.json").is_file():
                raise FactoryKitError(f"{ctx['output_dir']}: no trained adapter (adapter_config.json) yet; "
                                      f"run `factory-kit train {recipe}` first, or pass --model/--adapter")
            target = Target("finetuned", base_model, str(trained))
        else:
            if not (trained / "config.json").is_file():
                raise FactoryKitError(f"{ctx['output_dir']}: no trained model yet; run `factory-kit train {recipe}` first")
            target = Target("finetuned", str(trained))
    if out:
        out_dir = Path(out) if Path(out).is_absolute() else project / out
    elif recipe is not None:
        out_dir = project / ctx["output_dir"] / "eval"
    else:
        out_dir = project / "outputs" / "eval" / _slug(Path(target.adapter or target.model).name)
    targets = [target]
    base = None
    if baseline:
        base = Target("base", base_model)
        if base.model == target.model and base.adapter == target.adapter:
            raise FactoryKitError("--baseline: the base model and the evaluated model are the same")
        targets = [base, target]
    mode, thinking = default_mode(ctx.get("model") or model or base_model, project, ctx.get("thinking"))
    return EvalPlan(out_dir, targets, base, rendered.recipe.name if rendered else None, mode, thinking, ctx, rendered)
