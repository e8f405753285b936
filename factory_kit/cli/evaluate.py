"""`factory-kit eval`, `compare`, `report`: parse arguments, call factory_kit.evaluate, print."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from factory_kit.core import paths
from factory_kit.core.console import console, friendly
from factory_kit.core.errors import FactoryKitError


@click.command("eval")
@click.argument("recipe", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (repeatable).")
@click.option("--benchmark", "-b", "benchmarks", multiple=True, metavar="FILE_OR_NAME",
              help="Benchmark file, NAME in data/benchmarks/, or hf:ID[:CONFIG][@SPLIT] (repeatable; default: every file there).")
@click.option("--shots", type=click.IntRange(0, 5), default=0, show_default=True, help="Few-shot examples per item.")
@click.option("--mode", type=click.Choice(["loglikelihood", "generate"]), default=None,
              help="Score by answer log-likelihood, or generate (think, then answer) and extract the letter. "
                   "Default: generate for reasoning models (catalog `thinking`), else loglikelihood.")
@click.option("--merged", is_flag=True, help="Evaluate the exported (merged) model instead of base + adapter.")
@click.option("--model", default=None, help="Evaluate this model (folder or HF id) instead of the recipe's.")
@click.option("--adapter", default=None, help="With --model: a PEFT adapter folder to load on top.")
@click.option("--baseline", is_flag=True, help="Also evaluate the base model on the same items; write a before/after report.")
@click.option("--out", default=None, help="Results folder (default outputs/<recipe>/eval).")
@click.option("--device", default=None, help="cpu, cuda, cuda:0... (default: cuda when nvidia-smi exists).")
@click.option("--batch-size", default="8", show_default=True, help="lm-eval batch size (or 'auto').")
@click.option("--limit", type=int, default=None, help="At most N items per subject (smoke tests).")
@click.option("--max-gen-tokens", type=int, default=1024, show_default=True, help="Generate mode: token budget.")
@click.option("--no-benchmarks", is_flag=True, help="Skip the multiple-choice benchmarks.")
@click.option("--predict", is_flag=True, help="Generation metrics (BLEU-4, ROUGE) via do_predict on the eval split.")
@click.option("--predict-dataset", "predict_datasets", multiple=True,
              help="Dataset(s) for --predict (default: the recipe's eval_datasets).")
@click.option("--max-samples", type=int, default=None, help="--predict: at most N rows.")
@click.option("--max-new-tokens", type=int, default=None, help="--predict: tokens per answer (default: recipe).")
@click.option("--judge", is_flag=True, help="Score the --predict answers with an LLM judge (openai-compatible).")
@click.option("--judge-model", default=None, help="Judge model (default: env FACTORY_KIT_JUDGE_MODEL).")
@click.option("--judge-base-url", default=None, help="Judge endpoint (default: env FACTORY_KIT_JUDGE_BASE_URL).")
@friendly
def eval_cmd(recipe, overrides, benchmarks, shots, mode, merged, model, adapter, baseline, out, device, batch_size,
             limit, max_gen_tokens, no_benchmarks, predict, predict_datasets, max_samples, max_new_tokens, judge,
             judge_model, judge_base_url) -> None:
    """Evaluate RECIPE's fine-tuned model (or --model [--adapter]) on medical benchmarks.

    \b
    factory-kit eval recipes/tcm-lora.yaml --baseline            before/after on data/benchmarks/*
    factory-kit eval recipes/tcm-lora.yaml -b cmexam --shots 5   one benchmark, 5-shot
    factory-kit eval --model Qwen/Qwen2.5-7B-Instruct -b exam.jsonl
    factory-kit eval recipes/tcm-lora.yaml --no-benchmarks --predict --judge
    """
    from factory_kit import evaluate

    p = evaluate.plan(recipe, overrides, merged=merged, model=model, adapter=adapter, baseline=baseline, out=out)
    options = evaluate.EvalOptions(
        benchmarks=benchmarks, shots=shots, mode=mode or p.mode, device=device, batch_size=batch_size, limit=limit,
        max_gen_tokens=max_gen_tokens, no_benchmarks=no_benchmarks, predict=predict,
        predict_datasets=predict_datasets, max_samples=max_samples, max_new_tokens=max_new_tokens, judge=judge,
        judge_model=judge_model, judge_base_url=judge_base_url)
    started, exit_code, error, written = time.time(), 1, None, []
    try:
        written = evaluate.run_eval(p, options, console)
        exit_code = 0
    except FactoryKitError as exc:
        exit_code, error = exc.exit_code, str(exc)
        raise
    finally:
        from factory_kit.run.records import write_run_json

        targets = [{"label": t.label, "model": t.model, "adapter": t.adapter} for t in p.targets]
        path = write_run_json(p.out_dir / "run.json", p.rendered, paths.project_dir(), ["factory-kit", *sys.argv[1:]],
                              started, time.time(), exit_code,
                              {"kind": "eval", "targets": targets, "results": [str(w) for w in written],
                               "error": error})
        # run.json is the latest eval; runs.jsonl keeps every one (a --predict run must not erase the
        # record of the benchmark run before it)
        with open(p.out_dir / "runs.jsonl", "a", encoding="utf-8") as history:
            history.write(json.dumps(json.loads(path.read_text(encoding="utf-8")), ensure_ascii=False) + "\n")
    for path in written:
        console.print(f"[green]wrote[/] {path}")


@click.command()
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output prefix: writes OUT.md, OUT.png, OUT.json (default: compare-<A>-vs-<B> beside B).")
@click.option("--label-a", default=None, help="Column name for A (default: its label).")
@click.option("--label-b", default=None, help="Column name for B.")
@friendly
def compare(a: Path, b: Path, out: Path | None, label_a: str | None, label_b: str | None) -> None:
    """Compare two benchmark result files A (before) and B (after): table + bar chart."""
    from factory_kit.evaluate.compare import compare as do_compare

    out = out or b.parent / f"compare-{a.stem}-vs-{b.stem}"
    md, png = do_compare(a, b, out, labels=(label_a, label_b))
    console.print(md.read_text(encoding="utf-8"), markup=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {md}\n[green]wrote[/] {png}")


@click.command()
@click.argument("run")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default: <output_dir>/report).")
@click.option("--no-html", is_flag=True, help="Markdown only.")
@friendly
def report(run: str, out: Path | None, no_html: bool) -> None:
    """Training report for RUN (a recipe, or an output folder with run.json): Markdown + HTML + PNG."""
    from factory_kit.evaluate.report import build_report

    written = build_report(run, out=out, html=not no_html)
    for path in written:
        console.print(f"[green]wrote[/] {path}")


COMMANDS = [eval_cmd, compare, report]
