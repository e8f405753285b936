"""`factory-kit synth`: grow QA data through any OpenAI-compatible API (factory_kit.synth).
Each command parses, calls ``synthesize``, prints."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory_kit.core.console import console, err_console, friendly, warn


def _common(fn):
    options = [
        click.option("--name", required=True, help="Dataset NAME the generated rows are imported as."),
        click.option("--endpoint", default="local", show_default=True, metavar="PRESET|FILE",
                     help="An endpoint preset (factory-kit synth endpoints) or an endpoint YAML file."),
        click.option("--model", default=None, help="Override the endpoint's model."),
        click.option("--base-url", default=None, help="Override the endpoint's base URL."),
        click.option("--concurrency", type=int, default=None, help="Override the endpoint's concurrency."),
        click.option("--max-tokens", type=int, default=None, help="Max tokens per reply (default: the endpoint's)."),
        click.option("--limit", type=int, default=None, help="Only the first N chunks / topics / rows."),
        click.option("--budget-tokens", type=int, default=None, help="Stop before the run would use more tokens."),
        click.option("--budget-cost", type=float, default=None,
                     help="Stop before the run would cost more (the endpoint's currency)."),
        click.option("--dry-run", is_flag=True, help="Estimate requests, tokens and cost; send nothing."),
        click.option("--no-redact", is_flag=True, help="Send text out WITHOUT PII redaction (default: redacted)."),
        click.option("--cache", type=click.Path(path_type=Path), default=None,
                     help="The journal/cache file (default synth/journal.jsonl in the project)."),
        click.option("--judge", is_flag=True, help="Score each row with the LLM judge (same endpoint) and keep "
                                                    "rows at or above --judge-threshold."),
        click.option("--judge-threshold", type=float, default=3.5, show_default=True,
                     help="Mean judge score (1-5) a row needs."),
        click.option("--judge-endpoint", default=None, metavar="PRESET|FILE",
                     help="Judge with another endpoint (default: the generating one)."),
        click.option("--min-chars", type=int, default=4, show_default=True, help="Shortest question/answer kept."),
        click.option("--lang", type=click.Choice(["zh", "en", "any"]), default="zh", show_default=True,
                     help="Language check on generated rows."),
        click.option("--no-dedup-existing", is_flag=True, help="Do not drop items already in the project's datasets."),
        click.option("--force", is_flag=True, help="Replace an existing dataset NAME."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _run(mode: str, source: str, as_json: bool, no_redact: bool, no_dedup_existing: bool, **kw) -> None:
    from factory_kit.synth.pipeline import Options, synthesize

    if no_redact:
        warn("--no-redact: text is sent to the endpoint without PII redaction")
    opts = Options(mode=mode, source=source, redact=not no_redact, dedup_existing=not no_dedup_existing, **kw)
    try:
        report = synthesize(opts)
    except KeyboardInterrupt:
        err_console.print("interrupted: every answer received is in the journal; run the same command again to "
                          "resume (nothing paid for is asked again)", soft_wrap=True, markup=False)
        raise SystemExit(130) from None
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    if report.get("dry_run"):
        console.print(f"dry run {report['name']} ({report['mode']}) on {report['endpoint']} ({report['model']}): "
                      f"{report['requests']} requests ({report['cached']} already in the journal), "
                      f"~{report['tokens_in']:,} tokens in, ~{report['tokens_out']:,} out (at most "
                      f"{report['tokens_out_max']:,}); cost ~{report['cost']:.4f} {report['currency']} "
                      f"(at most {report['cost_max']:.4f}); nothing was sent", soft_wrap=True, markup=False)
        return
    req, imp = report["requests"], report["import"]
    console.print(f"{report['name']}: {report['rows']['generated']} generated, {report['rows']['after_judge']} "
                  f"passed the gates; import: {imp.get('accepted', 0)} accepted, {imp.get('quarantined', 0)} "
                  f"quarantined; {req['sent']} requests sent, {req['cached']} from the journal, {req['failed']} "
                  f"failed; {report['tokens']['input'] + report['tokens']['output']:,} tokens, "
                  f"{report['cost']:.4f} {report['currency']}; report: synth/{report['name']}/report.md",
                  soft_wrap=True, markup=False)
    if report["budget"]["reached"]:
        warn(f"budget reached: {req['not_sent_budget']} requests were not sent; raise --budget-* and run again "
             "(answers already paid for are reused)")


@click.group("synth")
def synth() -> None:
    """Generate QA data with an OpenAI-compatible API (Kimi, DeepSeek, GLM, Qwen, local), resumably."""


@synth.command("docs")
@click.argument("corpus")
@click.option("--questions", type=int, default=3, show_default=True, help="Questions per chunk.")
@click.option("--chunk-chars", type=int, default=1500, show_default=True, help="Chunk size (characters).")
@_common
@friendly
def docs_cmd(corpus: str, as_json: bool, no_redact: bool, no_dedup_existing: bool, **kw) -> None:
    """From documents: chunk CORPUS, ask questions per chunk, answer each from its chunk only."""
    _run("docs", corpus, as_json, no_redact, no_dedup_existing, **kw)


@synth.command("topics")
@click.argument("topics_file")
@click.option("--count", type=int, default=10, show_default=True, help="Pairs per topic when the list gives none.")
@click.option("--per-request", type=int, default=5, show_default=True, help="Pairs asked for per request.")
@_common
@friendly
def topics_cmd(topics_file: str, as_json: bool, no_redact: bool, no_dedup_existing: bool, **kw) -> None:
    """By topic: TOPICS_FILE lists departments/topics (YAML, CSV or one per line) with counts."""
    _run("topics", topics_file, as_json, no_redact, no_dedup_existing, **kw)


@synth.command("augment")
@click.argument("dataset")
@click.option("--task", type=click.Choice(["explain", "cot", "rewrite"]), default="explain", show_default=True,
              help="explain: add an explanation; cot: add a chain of thought (<think>); rewrite: reword.")
@_common
@friendly
def augment_cmd(dataset: str, as_json: bool, no_redact: bool, no_dedup_existing: bool, **kw) -> None:
    """Augment DATASET (an imported dataset name or a JSONL file)."""
    _run("augment", dataset, as_json, no_redact, no_dedup_existing, **kw)


@synth.command("endpoints")
@friendly
def endpoints_cmd() -> None:
    """The shipped endpoint presets (copy one to edit it: synth/endpoints/NAME.yaml)."""
    from factory_kit.synth import endpoints

    for name in endpoints.presets():
        ep = endpoints.load(name)
        console.print(f"{name:18} {ep.model:24} {ep.base_url}  key: ${ep.api_key_env or '-'}  "
                      f"{ep.price_input:g}/{ep.price_output:g} {ep.currency} per M in/out  "
                      f"concurrency {ep.concurrency}", soft_wrap=True, markup=False)
    console.print(f"presets folder: {endpoints.PRESETS_DIR}", soft_wrap=True, markup=False)


COMMANDS = [synth]
