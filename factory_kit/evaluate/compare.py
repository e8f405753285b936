"""Compare two benchmark result files: a paper-style table (rows = subjects, columns = runs,
difference highlighted) in Markdown, and a grouped bar chart PNG."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory_kit.core import charts, io
from factory_kit.core.errors import FactoryKitError
from factory_kit.evaluate.benchmarks import load_result


@dataclass
class Row:
    key: str          # short ASCII key used on the chart when no CJK font is installed
    benchmark: str
    subject: str      # "" for a benchmark total, "overall" for the grand total
    n: int | str      # "60 / 9" when A and B scored different numbers of items
    a: float | None
    b: float | None
    comparable: bool = True  # False when A and B scored different items that cannot be matched

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None or not self.comparable else self.b - self.a

    @property
    def label(self) -> str:
        if self.subject == "overall":
            return "Overall"
        return f"{self.benchmark} (all)" if not self.subject else f"{self.benchmark} / {self.subject}"


def _n(sa: dict[str, Any] | None, sb: dict[str, Any] | None) -> int | str:
    na, nb = (sa or {}).get("n"), (sb or {}).get("n")
    if na is None or nb is None or na == nb:
        return na if na is not None else nb
    return f"{na} / {nb}"


def table_rows(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    benches = sorted(set(a["benchmarks"]) | set(b["benchmarks"]))
    for bi, bench in enumerate(benches, 1):
        ra, rb = a["benchmarks"].get(bench, {}), b["benchmarks"].get(bench, {})
        subjects = sorted(set(ra.get("subjects", {})) | set(rb.get("subjects", {})))
        for si, subject in enumerate(subjects, 1):
            sa, sb = ra.get("subjects", {}).get(subject), rb.get("subjects", {}).get(subject)
            rows.append(Row(f"B{bi}.S{si}", bench, subject, _n(sa, sb),
                            sa["accuracy"] if sa else None, sb["accuracy"] if sb else None))
        if len(subjects) > 1 or len(benches) > 1:
            rows.append(Row(f"B{bi}", bench, "", _n(ra, rb), ra.get("accuracy"), rb.get("accuracy")))
    rows.append(Row("ALL", "", "overall", _n(a["overall"], b["overall"]), a["overall"]["accuracy"], b["overall"]["accuracy"]))
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _delta(value: float | None) -> str:
    if value is None:
        return "n/a"
    points = 100 * value
    if abs(points) < 0.05:
        return "0.0"
    return f"**{points:+.1f}** {'▲' if points > 0 else '▼'}"


def _item_rows(result: dict[str, Any], result_path: Path) -> dict[tuple[str, str], dict[str, Any]] | None:
    """(benchmark, id) -> the per-item row (subject, correct) from the result's items file."""
    name = result.get("items_file")
    if not name:
        return None
    path = result_path.parent / name
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[(row["benchmark"], str(row["id"]))] = row
    return out


def _correct(rows: dict[tuple[str, str], dict[str, Any]] | None) -> dict[tuple[str, str], bool] | None:
    return None if rows is None else {k: bool(r["correct"]) for k, r in rows.items()}


def restrict_to_common(a: dict[str, Any], b: dict[str, Any], a_rows, b_rows) -> tuple[dict, dict, int] | None:
    """A and B re-scored over only the items both scored (by benchmark and item id), and how many;
    None when the item sets are the same, unknown (no items files) or share nothing."""
    from factory_kit.evaluate.benchmarks import summarize

    if a_rows is None or b_rows is None or set(a_rows) == set(b_rows):
        return None
    common = sorted(set(a_rows) & set(b_rows))
    if not common:
        return None
    return ({**a, **summarize([a_rows[k] for k in common])}, {**b, **summarize([b_rows[k] for k in common])},
            len(common))


def mcnemar_p(better: int, worse: int) -> float:
    """Two-sided exact McNemar test (binomial on the discordant pairs)."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(a_items, b_items) -> dict[str, Any] | None:
    if a_items is None or b_items is None:
        return None
    common = set(a_items) & set(b_items)
    if not common:
        return None
    better = sum(1 for k in common if b_items[k] and not a_items[k])
    worse = sum(1 for k in common if a_items[k] and not b_items[k])
    return {"items": len(common), "only_a": len(set(a_items) - common), "only_b": len(set(b_items) - common),
            "fixed": better, "broken": worse, "mcnemar_p": mcnemar_p(better, worse)}


def describe(result: dict[str, Any]) -> str:
    model = result.get("model", "?")
    adapter = result.get("adapter")
    text = f"`{model}`" + (f" + adapter `{adapter}`" if adapter else "")
    return f"{text}; {result.get('mode', 'loglikelihood')}, {result.get('shots', 0)}-shot"


def tick_labels(rows: list[Row]) -> list[str]:
    """The chart's subject labels: the real (Chinese) names when a font can draw them, else the
    table's ASCII keys (B1.S2...), which the Markdown table next to the chart explains."""
    if charts.can_draw([r.label for r in rows]):
        return [r.label for r in rows]
    return [r.key if r.subject != "overall" else r.label for r in rows]


def bar_chart(rows: list[Row], labels: tuple[str, str], path: Path, title: str) -> Path:
    plt = charts.pyplot()
    names = tick_labels(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5))
    width = 0.38
    xs = range(len(rows))
    a_vals = [100 * (r.a or 0) for r in rows]
    b_vals = [100 * (r.b or 0) for r in rows]
    bars_a = ax.bar([x - width / 2 for x in xs], a_vals, width, label=labels[0], color="#9aa5b1")
    bars_b = ax.bar([x + width / 2 for x in xs], b_vals, width, label=labels[1], color="#2f7ed8")
    for bar_a, bar_b, row in zip(bars_a, bars_b, rows):
        if row.delta is not None:
            points = 100 * row.delta
            color = "#1a7f37" if points > 0.05 else "#cf222e" if points < -0.05 else "#57606a"
            top = max(bar_a.get_height(), bar_b.get_height())
            ax.text(bar_b.get_x(), top + 1.5, f"{points:+.1f}", ha="center", fontsize=8, color=color)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=30 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center",
                       fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def compare(a_path: str | Path, b_path: str | Path, out: str | Path | None = None, *,
            labels: tuple[str | None, str | None] = (None, None), title: str | None = None) -> tuple[Path, Path]:
    """Write ``OUT.md`` and ``OUT.png`` comparing result A (before) with B (after); OUT defaults to
    ``compare-<A>-vs-<B>`` beside B."""
    a_path, b_path = Path(a_path), Path(b_path)
    out = Path(out) if out is not None else b_path.parent / f"compare-{a_path.stem}-vs-{b_path.stem}"
    a, b = load_result(a_path), load_result(b_path)
    label_a = labels[0] or a.get("label") or a_path.stem
    label_b = labels[1] or b.get("label") or b_path.stem
    if label_a == label_b:
        label_a, label_b = f"{label_a} (A)", f"{label_b} (B)"
    a_rows, b_rows = _item_rows(a, a_path), _item_rows(b, b_path)
    n_a, n_b = (a.get("overall") or {}).get("n"), (b.get("overall") or {}).get("n")
    common = restrict_to_common(a, b, a_rows, b_rows)
    full_a, full_b = a, b
    if common:
        a, b, n_common = common
    rows = table_rows(a, b)
    known = a_rows is not None and b_rows is not None
    not_comparable = not common and (n_a != n_b or full_a.get("limit") != full_b.get("limit") or (
        known and set(a_rows) != set(b_rows)))
    if not_comparable:
        for r in rows:
            r.comparable = False
    if out.suffix in (".md", ".png", ".json"):
        out = out.with_suffix("")
    # add, never replace, the extension: a prefix like "before-after.1shot" or "cmp-v1.2" keeps its dots
    md_path, png_path, json_path = (out.with_name(out.name + ext) for ext in (".md", ".png", ".json"))
    title = title or f"{label_a} vs {label_b}"
    bar_chart(rows, (label_a, label_b), png_path, title)

    lines = [f"# {title}", "",
             f"- **{label_a}** (A): {describe(a)} (`{a_path.name}`), {n_a} items, "
             f"{_pct(full_a['overall'].get('accuracy'))} %",
             f"- **{label_b}** (B): {describe(b)} (`{b_path.name}`), {n_b} items, "
             f"{_pct(full_b['overall'].get('accuracy'))} %", ""]
    warnings = []
    limits = (f"; --limit {full_a.get('limit')} vs {full_b.get('limit')}"
              if full_a.get("limit") != full_b.get("limit") else "")
    if common:
        warnings.append(f"the runs scored different items (A: {n_a}, B: {n_b}{limits}): the table below compares "
                        f"only the {n_common} items both scored (matched by item id), N = {n_common}")
    for bench in sorted(set(full_a["benchmarks"]) & set(full_b["benchmarks"])):
        ha = a.get("benchmark_files", {}).get(bench, {}).get("sha256")
        hb = b.get("benchmark_files", {}).get(bench, {}).get("sha256")
        if ha and hb and ha != hb:
            warnings.append(f"benchmark `{bench}` differs between the runs (file hashes differ): "
                            "the rows are not the same items")
    for bench in sorted(set(full_a["benchmarks"]) ^ set(full_b["benchmarks"])):
        warnings.append(f"benchmark `{bench}` is in only one of the runs"
                        + (" (left out of the table: no items in common)" if common else ""))
    if not_comparable:
        why = ("they share no item" if known and not set(a_rows) & set(b_rows)
               else "no items file to match them by id" if not known else "")
        warnings.append(f"the runs scored different items (A: {n_a}, B: {n_b}{limits}"
                        + (f"; {why}" if why else "")
                        + "): the accuracies below are over different items and are NOT comparable (no Δ shown)")
    if a.get("shots") != b.get("shots") or a.get("mode") != b.get("mode"):
        warnings.append("the runs used different shots/mode: the difference is not only the model")
    for w in warnings:
        lines.append(f"> **Warning:** {w}")
    if warnings:
        lines.append("")
    n_header = "N (A / B)" if any(isinstance(r.n, str) for r in rows) else "N"
    lines += [f"| Key | Benchmark / subject | {n_header} | {label_a} (%) | {label_b} (%) | Δ (points) |",
              "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.label}**" if not r.subject or r.subject == "overall" else r.label
        lines.append(f"| {r.key} | {name} | {r.n} | {_pct(r.a)} | {_pct(r.b)} | {_delta(r.delta)} |")
    lines.append("")
    pair = paired(_correct(a_rows), _correct(b_rows))  # the items files read above, not again
    if pair:
        lines.append(f"Paired over {pair['items']} common items: {pair['fixed']} fixed (wrong in A, right in B), "
                     f"{pair['broken']} broken (right in A, wrong in B); exact McNemar p = {pair['mcnemar_p']:.3g}"
                     + (" (not significant at 0.05)" if pair["mcnemar_p"] >= 0.05 else "") + ".")
        lines.append("")
    lines += [f"![{title}]({png_path.name})", ""]
    io.write_text(md_path, "\n".join(lines))
    summary = {"a": str(a_path), "b": str(b_path), "labels": [label_a, label_b], "paired": pair,
               "n_a": n_a, "n_b": n_b, "common_items": n_common if common else None,
               "rows": [{"key": r.key, "benchmark": r.benchmark, "subject": r.subject, "n": r.n,
                         "a": r.a, "b": r.b, "delta": r.delta} for r in rows]}
    io.write_json(json_path, summary)
    if not rows:
        raise FactoryKitError("nothing to compare")
    return md_path, png_path
