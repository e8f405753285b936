"""`factory-kit data ...`: import, stats, ls, rm, samples (+ select, decontaminate from cli/select.py).
Parses arguments and prints; logic lives in factory_kit.data and factory_kit.select. The main CLI
adds this group with ``main.add_command(data)``."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from factory_kit.cli.options import json_option
from factory_kit.cli.select import register as register_select
from factory_kit.core.console import console, err_console, friendly, warn

FORMAT_CHOICES = ["auto", "alpaca", "sharegpt", "openai", "cot", "mcq", "text", "preference", "hf"]




def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group("data", context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Import medical sources into clean, registered datasets; inspect and list them."""


@data.command("import")
@click.argument("path")
@click.option("--name", required=True, help="Dataset name in dataset_info.json (data/NAME.jsonl).")
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True,
              help="Source format; auto-detected from the file type and columns.")
@click.option("--dedup", type=click.Choice(["exact", "near", "none"]), default="exact", show_default=True,
              help="Remove exact duplicates (normalised text), near duplicates (MinHash/LSH), or none.")
@click.option("--near-threshold", type=float, default=0.85, show_default=True,
              help="Jaccard similarity at which --dedup near calls two rows duplicates.")
@click.option("--near-ngram", type=int, default=3, show_default=True, help="Character n-gram size for --dedup near.")
@click.option("--redact", is_flag=False, flag_value="all", default=None, metavar="[KINDS]",
              help="Redact personal data: all, or a comma list of id_card,phone,email,mrn,name.")
@click.option("--split", default=None, metavar="TRAIN,VAL[,TEST]",
              help="Deterministic split, e.g. 0.8,0.1,0.1: registers NAME_train, NAME_val, NAME_test.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for --split.")
@click.option("--stratify", is_flag=False, flag_value="source", default=None, metavar="[FIELD]",
              help="Split within each value of FIELD (default: source file; e.g. subject for exams).")
@click.option("--max-chars", type=int, default=50000, show_default=True,
              help="Quarantine rows longer than this (characters, all fields); 0 = no limit.")
@click.option("--chunk-chars", type=int, default=None, help="Text imports: chunk size in characters (default 2000).")
@click.option("--chunk-tokens", type=int, default=None, help="Text imports: chunk size in tokens (needs --tokenizer).")
@click.option("--tokenizer", default=None, help="Local tokenizer/model folder for --chunk-tokens.")
@click.option("--cot-style", type=click.Choice(["think", "plain", "drop"]), default="think", show_default=True,
              help="Chain-of-thought: <think> block (reasoning templates), plain text, or dropped.")
@click.option("--t2s", is_flag=True, help="Convert traditional to simplified Chinese (OpenCC t2s).")
@click.option("--width-policy", type=click.Choice(["zh", "half", "keep"]), default="zh", show_default=True,
              help="zh: ASCII letters/digits, full-width punctuation after Chinese; half: all half-width; keep.")
@click.option("--encoding", default=None, help="Force the file encoding (default: UTF-8/BOM/UTF-16/GB18030 sniffed).")
@click.option("--columns", default=None, metavar="FIELD=COL,...",
              help="Map columns, e.g. instruction=问题,output=答案.")
@click.option("--sheet", default=None, help="Excel sheet (default: the first).")
@click.option("--hf-split", default=None, help="Split of a datasets folder or hub id (default: train).")
@click.option("--limit", type=int, default=None, help="Import only the first N records (a quick try).")
@click.option("--workers", type=int, default=None, help="Processes for large JSON Lines files (default: CPUs, max 4).")
@click.option("--force", is_flag=True, help="Replace a dataset another import owns (a split of another NAME).")
@json_option
@friendly
def import_cmd(path: str, name: str, fmt: str, as_json: bool, **options) -> None:
    """Import PATH (file, folder, datasets folder or hub id) as dataset NAME."""
    try:
        from factory_kit.data.importer import import_source

        report = import_source(path, name, None if fmt == "auto" else fmt, **options)  # shows its own progress bar
    except KeyboardInterrupt as exc:
        if getattr(exc, "committed", False):
            err_console.print(f"interrupted after the final step: {name} is the new import", markup=False)
        else:
            err_console.print(f"interrupted; nothing changed ({name} is as it was before this import)",
                              soft_wrap=True, markup=False)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_import(report, name, options)
    if report.interrupted:
        err_console.print(f"interrupted during the final step, which completed: {name} is the new import",
                          soft_wrap=True, markup=False)
        sys.exit(130)


def _print_import(report, name: str, options: dict) -> None:
    if report.cleaned:
        console.print(f"cleaned: {report.cleaned}", soft_wrap=True, markup=False)
    console.print(report.summary(), soft_wrap=True)
    details = []
    if report.splits:
        details.append("split: " + ", ".join(f"{name}{'_' + s} {n}" for s, n in report.splits.items()))
    if report.benchmark is not None:
        held = report.held_out
        if held:
            line = f"benchmark: {report.rel(report.benchmark)} ({report.splits[held]} {name}_{held} items, not trained on"
            if report.benchmark_dev is not None:
                line += f"; few-shot dev: {report.rel(report.benchmark_dev)}"
            details.append(line + ")")
        else:
            details.append(f"benchmark: {report.rel(report.benchmark)} (note: the same items are in the SFT rows; "
                           "use --split to hold some out before evaluating on them)")
    if report.multi_answer_dropped:
        n = report.multi_answer_dropped
        line = f"{n} multi-answer item(s) kept for SFT, left out of "
        if report.benchmark is not None:
            line += f"{report.rel(report.benchmark)} (single-answer scoring)"
        else:
            line += f"the benchmark (single-answer scoring): no single-answer item left, so no data/benchmarks/{name}.jsonl written"
        details.append(line)
    if report.redactions:
        details.append("redacted: " + ", ".join(f"{k} {v}" for k, v in sorted(report.redactions.items())))
    elif options.get("redact"):
        details.append("redacted: nothing found")
    details.extend(f"note: {note}" for note in report.notes)
    details.append(f"registered: {', '.join(report.registered)} ({report.output_format}) in dataset_info/dataset_info.json")
    for line in details:
        console.print(f"  {line}", soft_wrap=True)
    if report.quarantined:
        table = Table(title="quarantined", show_edge=False, title_justify="left")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        for kind, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
            table.add_row(kind, str(n))
        console.print(table)
        for ex in report.examples[:3]:
            console.print(f"  {ex}", soft_wrap=True, markup=False)


@data.command("stats")
@click.argument("name")
@click.option("--tokenizer", default=None, help="Local tokenizer/model folder: adds token lengths and cutoff counts.")
@click.option("--limit", type=int, default=None, help="Only the first N rows.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG histograms.")
@json_option
@friendly
def stats_cmd(name: str, tokenizer: str | None, limit: int | None, no_plots: bool, as_json: bool) -> None:
    """Counts, length distributions (chars, tokens), duplicates, source mix, turns of NAME."""
    from factory_kit.core import paths
    from factory_kit.data.stats import compute

    result = compute(name, paths.project_dir(), tokenizer=tokenizer, plots=not no_plots, limit=limit)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    console.print(f"[bold]{name}[/]: {result['rows']:,} rows, {result['format']}, {result['file']} "
                  f"({_size(result['bytes'])}); {result['duplicates']} duplicate(s)", soft_wrap=True)
    table = Table(show_edge=False)
    for col in ("measure", "mean", "min", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="left" if col == "measure" else "right")

    def add(label: str, d: dict | None) -> None:
        if d and d.get("count"):
            table.add_row(label, *(f"{d[k]:,.0f}" if k != "mean" else f"{d[k]:,.1f}"
                                   for k in ("mean", "min", "p50", "p90", "p99", "max")))

    add("prompt chars", result["chars"]["prompt"])
    add("response chars", result["chars"]["response"])
    add("total chars", result["chars"]["total"])
    if "tokens" in result:
        add("tokens", result["tokens"])
    if result.get("turns"):
        add("turns", result["turns"])
    console.print(table)
    if "tokens" in result:
        over = ", ".join(f">{c}: {n}" for c, n in result["tokens"]["over_cutoff"].items())
        console.print(f"  tokens total {result['tokens']['total']:,}; rows over cutoff_len {over}", soft_wrap=True)
    if result["sources"]:
        mix = ", ".join(f"{s} {n}" for s, n in list(result["sources"].items())[:5])
        more = f" (+{result['source_count'] - 5} more)" if result["source_count"] > 5 else ""
        console.print(f"  sources: {mix}{more}", soft_wrap=True, markup=False)
    if result.get("quarantine"):
        q = result["quarantine"]
        console.print(f"  quarantined: {', '.join(f'{k} {v}' for k, v in q['reasons'].items())} ({q['file']})",
                      soft_wrap=True, markup=False)
    if result.get("plots"):
        console.print(f"  plots: {', '.join(result['plots'])}", soft_wrap=True, markup=False)


@data.command("samples")
@click.option("--force", is_flag=True, help="Replace your own datasets that use a sample's name.")
@friendly
def samples_cmd(force: bool) -> None:
    """Import the shipped sample data (data/samples/) under the names the shipped recipes use."""
    from factory_kit.core import paths
    from factory_kit.data.samples import import_samples

    for rep in import_samples(paths.project_dir(), force=force):
        console.print(f"{rep.name}: {rep.accepted} accepted, {rep.quarantined} quarantined -> "
                      f"{', '.join(rep.registered)}", soft_wrap=True, markup=False)


@data.command("rm")
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even though a recipe in recipes/ uses it.")
@friendly
def rm_cmd(name: str, force: bool) -> None:
    """Remove dataset NAME: its rows, splits, benchmark, quarantine, import record and registry entries."""
    from factory_kit.core import paths
    from factory_kit.data.remove import remove_dataset

    done = remove_dataset(paths.project_dir(), name, force=force)
    if done.cleaned:
        console.print(f"cleaned: {done.cleaned}", soft_wrap=True, markup=False)
    if done.used_by:
        warn(f"{name} was used by {'; '.join(done.used_by)}: those recipes now name a missing dataset")
    if done.entries:
        console.print(f"unregistered: {', '.join(done.entries)} (dataset_info/dataset_info.json)", soft_wrap=True,
                      markup=False)
    for f in done.files:
        console.print(f"removed: {f}", soft_wrap=True, markup=False)
    for f in done.kept:
        console.print(f"kept: {f} (registered by hand, not written by an import)", soft_wrap=True, markup=False)


@data.command("ls")
@json_option
@friendly
def ls_cmd(as_json: bool) -> None:
    """List dataset_info.json: names, formats, files, sizes, rows."""
    from factory_kit.core import paths
    from factory_kit.data.stats import list_registry

    items = list_registry(paths.project_dir())
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        console.print("no datasets registered yet; try `factory-kit data import data/samples/tcm_qa.jsonl --name tcm_qa`")
        return
    table = Table(show_edge=False)
    for col in ("name", "format", "rows", "size", "file"):
        table.add_column(col, justify="right" if col in ("rows", "size") else "left")
    for it in items:
        rows = "-" if it["rows"] is None else f"{it['rows']:,}"
        file = it["file"] + (" [red](missing)[/]" if it.get("missing") else "")
        table.add_row(it["name"], it["format"], rows, _size(it["bytes"]), file)
    console.print(table)


__all__ = ["data"]


register_select(data)


def _main() -> None:  # pragma: no cover - `python -m factory_kit.cli.data`
    data(prog_name="factory-kit data")


if __name__ == "__main__":  # pragma: no cover
    _main()

