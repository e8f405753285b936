"""The end of a synthesis run: the generated rows written whole (atomically), imported through
the normal import, provenance joined to the imported rows, and the report (JSON + Markdown)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from factory_kit.core import io
from factory_kit.core.errors import FactoryKitError

EXAMPLES = 5


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def finish(run: Any, kept: list[dict[str, Any]], counts: dict[str, int], cache: Path, seconds: float) -> dict[str, Any]:
    from factory_kit.data.importer import import_source
    from factory_kit.data.store import data_file

    o, ep = run.opts, run.endpoint
    folder = run.project / "synth" / o.name
    folder.mkdir(parents=True, exist_ok=True)
    generated = folder / "generated.jsonl"
    io.write_text(generated, _jsonl([c["row"] for c in kept]), fsync=True)
    fmt = "cot" if o.mode == "augment" and o.task == "cot" else "alpaca"
    imported: dict[str, Any] = {"skipped": "no rows passed the gates"} if not kept else {}
    accepted_rows: set[int] = set()
    if kept:
        try:
            rep = import_source(generated, o.name, fmt, project=run.project, redact="all" if o.redact else None,
                                force=o.force)
        except FactoryKitError as exc:
            raise FactoryKitError(f"{exc} (the generated rows are kept in {generated}; every answer is in the "
                                  f"journal {cache}, so running again costs nothing)") from None
        imported = {"accepted": rep.accepted, "quarantined": rep.quarantined, "duplicates": rep.duplicates,
                    "output": rep.rel(rep.output), "quarantine": rep.rel(rep.quarantine) if rep.quarantine else None,
                    "registered": rep.registered, "redactions": rep.redactions, "reasons": rep.reasons}
        with open(data_file(run.project, o.name), encoding="utf-8") as f:
            accepted_rows = {json.loads(line).get("source_row") for line in f if line.strip()}
    provenance = [{"source_row": i, "imported": i in accepted_rows, **c["prov"]} for i, c in enumerate(kept, 1)]
    io.write_text(folder / "provenance.jsonl", _jsonl(provenance))
    io.write_text(folder / "rejected.jsonl", _jsonl(run.rejected))
    stats = run.client.stats
    data = {
        "name": o.name, "mode": o.mode, "task": o.task if o.mode == "augment" else None,
        "endpoint": {"name": ep.name, "model": ep.model, "base_url": ep.base_url},
        "stages": {k: dataclasses.asdict(v) for k, v in run.stages.items()},
        "rows": counts, "import": imported,
        "requests": {"sent": stats.sent, "cached": stats.cached, "failed": stats.failed,
                     "not_sent_budget": stats.skipped_budget, "retries": stats.retries,
                     "retry_reasons": stats.retry_reasons, "errors": stats.errors},
        "tokens": {"input": stats.tokens_in, "output": stats.tokens_out},
        "cost": round(stats.cost, 6), "currency": ep.currency,
        "budget": {"tokens": o.budget_tokens, "cost": o.budget_cost, "reached": run.client.budget.reached},
        "redactions_sent": dict(run.redactor.counts) if run.redactor else None,
        "rejected": dict(run.reasons), "rejected_examples": run.rejected[:EXAMPLES],
        "files": {"generated": str(generated.relative_to(run.project)),
                  "provenance": str((folder / "provenance.jsonl").relative_to(run.project)),
                  "rejected": str((folder / "rejected.jsonl").relative_to(run.project)),
                  "journal": str(cache)},
        "journal_torn_lines": getattr(run.client.journal, "torn", 0),
        "seconds": round(seconds, 2),
    }
    io.write_json(folder / "report.json", data)
    io.write_text(folder / "report.md", markdown(data))
    return data


def markdown(d: dict[str, Any]) -> str:
    lines = [f"# synth {d['name']} ({d['mode']}{' ' + d['task'] if d.get('task') else ''})", "",
             f"Endpoint `{d['endpoint']['name']}`: model `{d['endpoint']['model']}` at {d['endpoint']['base_url']}", "",
             "## Requests per stage", "",
             ("| stage | requests | sent | cached | failed | not sent (budget) | parsed | repaired | unparseable "
              "| wrong count | items |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in d["stages"].items():
        lines.append(f"| {name} | {s['requests']} | {s['sent']} | {s['cached']} | {s['failed']} | "
                     f"{s['not_sent_budget']} | {s['parsed']} | {s['repaired']} | {s['unparseable']} | "
                     f"{s['wrong_count']} | {s['items']} |")
    r, imp = d["rows"], d["import"]
    lines += ["", "## Rows", "", f"- generated: {r['generated']}",
              f"- after length/language/dedup gates: {r['after_gates']}", f"- after the judge: {r['after_judge']}"]
    if "accepted" in imp:
        lines.append(f"- imported: {imp['accepted']} accepted, {imp['quarantined']} quarantined -> {imp['output']}")
    else:
        lines.append(f"- imported: nothing ({imp.get('skipped')})")
    t = d["tokens"]
    lines += ["", "## Cost", "", f"- tokens: {t['input']:,} in, {t['output']:,} out",
              f"- cost: {d['cost']:.4f} {d['currency']}" + (" (budget reached: requests left unsent)"
                                                           if d["budget"]["reached"] else ""),
              (f"- requests: {d['requests']['sent']} sent, {d['requests']['cached']} from the journal, "
               f"{d['requests']['failed']} failed, {d['requests']['retries']} retries")]
    if d.get("redactions_sent") is not None:
        red = ", ".join(f"{k} {v}" for k, v in d["redactions_sent"].items()) or "none found"
        lines += ["", f"PII redacted before sending: {red}"]
    else:
        lines += ["", "PII redaction was OFF (--no-redact)"]
    if d["rejected"]:
        lines += ["", "## Rejected", ""] + [f"- {k}: {v}" for k, v in d["rejected"].items()]
        lines += ["", "Examples:", ""] + [f"- `{json.dumps(e, ensure_ascii=False)[:300]}`"
                                          for e in d["rejected_examples"]]
    return "\n".join(lines) + "\n"
