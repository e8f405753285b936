"""`factory-kit eval`, `compare`, `report`: parse arguments, call factory_kit.evaluate, print."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from factory_kit.cli.options import announce_recipe, from_fields, merged_option, set_option
from factory_kit.core.console import console, friendly
from factory_kit.evaluate import EvalOptions


@click.command("eval")
@click.argument("recipe", required=False, callback=announce_recipe)
@set_option
@merged_option
@from_fields(EvalOptions)
@friendly
def eval_cmd(recipe: str | None, overrides: tuple[str, ...], **options) -> None:
    """Evaluate RECIPE's fine-tuned model (or --model [--adapter]) on medical benchmarks.

    \b
    before/after on data/benchmarks/*:
      factory-kit eval recipes/tcm-lora.yaml --baseline
    one benchmark, 5-shot:
      factory-kit eval recipes/tcm-lora.yaml -b cmexam --shots 5
    a model without a recipe:
      factory-kit eval --model Qwen/Qwen2.5-7B-Instruct -b exam.jsonl
    generation metrics and an LLM judge instead of benchmarks:
      factory-kit eval recipes/tcm-lora.yaml --no-benchmarks --predict --judge
    """
    from factory_kit import evaluate

    written = evaluate.evaluate(recipe, overrides, EvalOptions(**options), console, ["factory-kit", *sys.argv[1:]])
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

    md, png = do_compare(a, b, out, labels=(label_a, label_b))
    console.print(md.read_text(encoding="utf-8"), markup=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {md}\n[green]wrote[/] {png}")


@click.command()
@click.argument("run", callback=announce_recipe)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default: <output_dir>/report).")
@click.option("--no-html", is_flag=True, help="Markdown only.")
@friendly
def report(run: str, out: Path | None, no_html: bool) -> None:
    """Training report for RUN (a recipe, or an output folder with run.json): Markdown + HTML + PNG."""
    from factory_kit.evaluate.report import build_report

    for path in build_report(run, out=out, html=not no_html):
        console.print(f"[green]wrote[/] {path}")


COMMANDS = [eval_cmd, compare, report]
