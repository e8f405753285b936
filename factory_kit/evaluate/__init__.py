"""Evaluation: benchmarks (lm-eval), generation metrics (do_predict), LLM judge, compare, report.

``factory-kit eval`` calls ``evaluate``: ``plan`` (which model, + adapter, a recipe produced;
the base model too with ``baseline``), then ``run_eval`` (benchmarks, before/after table,
generation metrics, judge), which writes everything under ``outputs/<recipe>/eval/``, the
run recorded there by the run layer (``run.json``, ``runs.jsonl``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.options import option


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


@dataclass
class EvalOptions:
    """What `factory-kit eval` was asked to run; each field is also its command-line option."""
    benchmarks: tuple[str, ...] = option(
        (), "--benchmark", "-b", metavar="FILE_OR_NAME",
        help="Benchmark file, NAME in data/benchmarks/, or hf:ID[:CONFIG][@SPLIT] (repeatable; default: every file there).")
    shots: int = option(0, "--shots", range=(0, 5), show_default=True, help="Few-shot examples per item.")
    mode: str | None = option(
        None, "--mode", choices=("loglikelihood", "generate"),
        help="Score by answer log-likelihood, or generate (think, then answer) and extract the letter. "
             "Default: generate for reasoning models (catalog `thinking`), else loglikelihood.")
    merged: bool = False  # the shared --merged option (cli/options.py)
    model: str | None = option(None, "--model", help="Evaluate this model (folder or HF id) instead of the recipe's.")
    adapter: str | None = option(None, "--adapter", help="With --model: a PEFT adapter folder to load on top.")
    baseline: bool = option(False, "--baseline",
                            help="Also evaluate the base model on the same items; write a before/after report.")
    out: str | None = option(None, "--out", help="Results folder (default outputs/<recipe>/eval).")
    device: str | None = option(None, "--device", help="cpu, cuda, cuda:0... (default: cuda when nvidia-smi exists).")
    batch_size: str = option("8", "--batch-size", show_default=True, help="lm-eval batch size (or 'auto').")
    limit: int | None = option(None, "--limit", type=int, help="At most N items per subject (smoke tests).")
    max_gen_tokens: int = option(1024, "--max-gen-tokens", type=int, show_default=True,
                                 help="Generate mode: token budget.")
    no_benchmarks: bool = option(False, "--no-benchmarks", help="Skip the multiple-choice benchmarks.")
    predict: bool = option(False, "--predict",
                           help="Generation metrics (BLEU-4, ROUGE) via do_predict on the eval split.")
    predict_datasets: tuple[str, ...] = option((), "--predict-dataset",
                                               help="Dataset(s) for --predict (default: the recipe's eval_datasets).")
    max_samples: int | None = option(None, "--max-samples", type=int, help="--predict: at most N rows.")
    max_new_tokens: int | None = option(None, "--max-new-tokens", type=int,
                                        help="--predict: tokens per answer (default: recipe).")
    judge: bool = option(False, "--judge", help="Score the --predict answers with an LLM judge (openai-compatible).")
    judge_model: str | None = option(None, "--judge-model", help="Judge model (default: env FACTORY_KIT_JUDGE_MODEL).")
    judge_base_url: str | None = option(None, "--judge-base-url",
                                        help="Judge endpoint (default: env FACTORY_KIT_JUDGE_BASE_URL).")
    verbose: bool = option(False, "--verbose", "-v",
                           help="Show lm-eval's and LLaMA-Factory's own log lines (always kept in the .log files).")


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
        from factory_kit.recipe import catalog

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
        from factory_kit.recipe.render import render
        from factory_kit.run.model import trained_model_dir

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
        target = Target("merged", str(trained_model_dir(rendered, project, merged=True)))
    else:
        trained = trained_model_dir(rendered, project, hint=", or pass --model/--adapter" if ctx["adapter"] else "")
        target = (Target("finetuned", base_model, str(trained)) if ctx["adapter"]
                  else Target("finetuned", str(trained)))
    if out:
        out_dir = Path(out) if Path(out).is_absolute() else project / out
    elif recipe is not None:
        out_dir = project / ctx["output_dir"] / "eval"
    else:
        out_dir = paths.outputs_dir(project) / "eval" / _slug(Path(target.adapter or target.model).name)
    targets = [target]
    base = None
    if baseline:
        base = Target("base", base_model)
        if base.model == target.model and base.adapter == target.adapter:
            raise FactoryKitError("--baseline: the base model and the evaluated model are the same")
        targets = [base, target]
    mode, thinking = default_mode(ctx.get("model") or model or base_model, project, ctx.get("thinking"))
    return EvalPlan(out_dir, targets, base, rendered.recipe.name if rendered else None, mode, thinking, ctx, rendered)


def scored_weights(target: Target) -> dict[str, Any] | None:
    """Which trained weights a result scores (records.weights_identity), so `report` can tell results
    of an older adapter from this run's: the adapter's; for a merged model, the adapter it was merged
    from (its marker); a fully trained model's own. None for a base model."""
    from factory_kit.run import records

    if target.adapter:
        return records.weights_identity(target.adapter)
    if target.label == "base" or not Path(target.model).is_dir():
        return None
    if target.label == "merged":
        return records.merged_from(Path(target.model))
    return records.weights_identity(target.model)


def hint_terms(o: EvalOptions, model: str) -> dict[str, str]:
    """How a failure's fix names the model for this eval: the --model option, or the recipe's key."""
    if o.model:
        return {"use_local": "pass `--model models/NAME`", "model": model}
    return {"use_local": "set `model: models/NAME` in the recipe", "model": model}


def result_suffix(o: EvalOptions, benches) -> str:
    """File-name suffix that keeps runs on other benchmarks or shots from overwriting each other:
    "" for the default (every benchmark, zero-shot), else e.g. ".cmexam+hospital.5shot"."""
    parts = []
    if o.benchmarks:
        parts.append("+".join(sorted(_slug(b.name) for b in benches))[:80])
    if o.shots:
        parts.append(f"{o.shots}shot")
    return "".join(f".{part}" for part in parts)


def evaluate(recipe: str | None, overrides: tuple[str, ...], o: EvalOptions, console, command: list[str]) -> list[Path]:
    """`factory-kit eval`: plan, run, and record the run (``run.json`` + ``runs.jsonl`` in the results
    folder, a failed run too) through the run layer's records, as training does."""
    from factory_kit.run import records

    p = plan(recipe, overrides, merged=o.merged, model=o.model, adapter=o.adapter, baseline=o.baseline, out=o.out)
    targets = [{"label": t.label, "model": t.model, "adapter": t.adapter} for t in p.targets]
    # run.json is the latest eval; runs.jsonl keeps every one (a --predict run must not erase the
    # record of the benchmark run before it)
    with records.recording(p.out_dir / "run.json", p.rendered, paths.project_dir(), command,
                           {"kind": "eval", "targets": targets, "results": [], "error": None}, history=True) as extra:
        written = run_eval(p, o, console)
        extra["results"] = [str(w) for w in written]
    return written


def run_eval(p: EvalPlan, o: EvalOptions, console) -> list[Path]:
    """Benchmarks (and base-vs-tuned compare), then generation metrics and the judge, as asked."""
    from factory_kit.evaluate import benchmarks as bm

    written: list[Path] = []
    results: dict[str, Path] = {}
    if not o.no_benchmarks:
        try:
            benches = bm.resolve_benchmarks(o.benchmarks)
        except FactoryKitError:
            if o.benchmarks or not (o.predict or o.judge):
                raise
            benches = []
        if benches:
            for target in p.targets:
                bm.check_model_dirs(target.model, target.adapter, use_local=hint_terms(o, target.model)["use_local"])
            mode = o.mode or p.mode
            console.print(f"[bold]benchmarks[/]: {', '.join(f'{b.name} ({len(b.items)} items)' for b in benches)}; "
                          f"{mode}, {o.shots}-shot -> {p.out_dir}")
            suffix = result_suffix(o, benches)
            for number, target in enumerate(p.targets, 1):
                console.print(f"[bold]evaluating {target.label}[/]: {target.model}"
                              + (f" + {target.adapter}" if target.adapter else ""))
                path = bm.evaluate(benches, target.model, target.adapter, p.out_dir, label=target.label, shots=o.shots,
                                   mode=mode, device=o.device, batch_size=o.batch_size, max_gen_tokens=o.max_gen_tokens,
                                   limit=o.limit, name=target.label + suffix, echo=o.verbose,
                                   extra={"recipe": p.recipe_name, "trained_weights": scored_weights(target)},
                                   step=f"{number}/{len(p.targets)} " if len(p.targets) > 1 else "",
                                   terms=hint_terms(o, target.model))
                results[target.label] = path
                written.append(path)
                console.print(bm.accuracy_table(bm.load_result(path), f"{target.label}: {path.name}"))
            if p.base is not None:
                from factory_kit.evaluate.compare import compare as do_compare

                tuned = p.targets[-1].label
                md, png = do_compare(results["base"], results[tuned], p.out_dir / f"before-after{suffix}",
                                     title=f"{p.recipe_name or 'model'}: base vs {tuned}")
                written += [md, png]
                console.print(md.read_text(encoding="utf-8"), markup=False, soft_wrap=True)
    if o.predict or o.judge:
        from factory_kit.evaluate import generation

        if p.rendered is None:
            raise FactoryKitError("--predict/--judge need a RECIPE (its template, eval datasets and output_dir)")
        target = p.targets[-1]
        pred_dir = p.out_dir / "generation"
        if o.predict or not (pred_dir / "generated_predictions.jsonl").is_file():
            metrics = generation.predict(p.rendered, target.model, target.adapter, pred_dir,
                                         datasets=list(o.predict_datasets) or None, max_samples=o.max_samples,
                                         max_new_tokens=o.max_new_tokens, echo=o.verbose,
                                         extra={"trained_weights": scored_weights(target)})
            console.print(generation.metrics_table(metrics))
            written += [pred_dir / "generation.json", pred_dir / "generated_predictions.jsonl"]
        if o.judge:
            from factory_kit.evaluate import judge as judge_mod

            summary = judge_mod.judge_predictions(pred_dir / "generated_predictions.jsonl", p.out_dir / "judge",
                                                  model=o.judge_model, base_url=o.judge_base_url)
            console.print(judge_mod.summary_line(summary))
            written.append(p.out_dir / "judge" / "judge.json")
    if not written:
        raise FactoryKitError("nothing evaluated: no benchmarks (or --no-benchmarks) and no --predict/--judge")
    return written
