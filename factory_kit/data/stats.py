"""``factory-kit data stats NAME``: what is in a registered dataset, before GPU time is spent.

Works on any entry of dataset_info.json (imported by factory-kit or written by hand): the
entry's ``formatting``/``columns``/``tags`` say where prompts and responses are. Streams the
file once; keeps one small integer per row per measure (for percentiles and histograms).
Writes ``data/stats/NAME/stats.json`` and PNG histograms next to it.
"""

from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

from factory_kit.core import io, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import readers, registry
from factory_kit.data.dedup import dedup_key, key_hash
from factory_kit.data.store import quarantine_file
from factory_kit.data.tokens import load_tokenizer

CUTOFFS = (512, 1024, 2048, 4096, 8192)


def resolve(name: str, project: Path) -> tuple[dict[str, Any], Path]:
    return registry.local_dataset(name, project, "stats work on local files only")


def kind_of(entry: dict[str, Any]) -> str:
    columns = entry.get("columns") or {}
    if entry.get("formatting", "alpaca") == "alpaca":
        if set(columns) == {"prompt"}:
            return "pt"
        if entry.get("ranking"):
            return "alpaca+ranking"
        if columns.get("kto_tag"):
            return "alpaca+kto"
        return "alpaca"
    if entry.get("formatting") == "sharegpt" and (entry.get("tags") or {}).get("role_tag") == "role":
        return "sharegpt(openai)" + ("+ranking" if entry.get("ranking") else "")
    return entry.get("formatting", "alpaca") + ("+ranking" if entry.get("ranking") else "")


def _extract(entry: dict[str, Any]):
    """row -> (prompt text, response text, assistant turns) following the entry's maps."""
    fmt = entry.get("formatting", "alpaca")
    has_columns = "columns" in entry
    cols = entry.get("columns") or {}

    def col(name: str, default: str | None) -> str | None:
        return cols.get(name) if has_columns else default

    def s(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, dict):
            return str(v.get(tags["content_tag"], "") or "")
        return "" if v is None else str(v)

    if fmt == "alpaca":
        prompt_c, query_c, resp_c = col("prompt", "instruction"), col("query", "input"), col("response", "output")
        hist_c, sys_c, chosen_c = col("history", None), col("system", None), col("chosen", None)

        def get(row: dict) -> tuple[str, str, int]:
            prompt = "\n".join(x for x in (s(row.get(sys_c)) if sys_c else "", s(row.get(prompt_c)),
                                           s(row.get(query_c)) if query_c else "") if x)
            turns = 1
            hist = row.get(hist_c) if hist_c else None
            if isinstance(hist, list):
                turns += len(hist)
                prompt += "".join(s(q) + s(a) for q, a in (h for h in hist if isinstance(h, list) and len(h) == 2))
            if chosen_c and entry.get("ranking"):
                response = s(row.get(chosen_c))
            else:
                response = s(row.get(resp_c)) if resp_c else ""
            return prompt, response, turns if response or resp_c else 0
        return get

    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
            "system_tag": "system"}
    if fmt == "openai":
        tags.update({"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"})
    tags.update({k: v for k, v in (entry.get("tags") or {}).items() if v})
    msg_c = col("messages", "conversations" if fmt == "sharegpt" else "messages")
    sys_c, chosen_c = col("system", None), col("chosen", None)

    def get_conv(row: dict) -> tuple[str, str, int]:
        msgs = row.get(msg_c) or []
        prompt, response, turns = [s(row.get(sys_c)) if sys_c else ""], [], 0
        for m in msgs if isinstance(msgs, list) else []:
            if not isinstance(m, dict):
                continue
            role, content = m.get(tags["role_tag"]), s(m.get(tags["content_tag"]))
            if role == tags["assistant_tag"]:
                response.append(content)
                turns += 1
            else:
                prompt.append(content)
        if chosen_c and entry.get("ranking"):
            response.append(s(row.get(chosen_c)))
            turns += 1
        return "\n".join(p for p in prompt if p), "\n".join(response), turns
    return get_conv


def text_chars(prompt: str, response: str) -> int:
    """Characters of a row, the one count `data stats` (total chars) and `report` (dataset
    cards) both give: its prompt and response text as the registry entry maps them (system,
    prompt, query, history; or the turns' contents), never provenance (``source``) or role tags."""
    return len(prompt) + len(response)


def row_chars(entry: dict[str, Any]) -> Callable[[dict], int]:
    """``row -> characters`` (:func:`text_chars`) for rows of a registry entry."""
    get = _extract(entry)

    def count(row: dict) -> int:
        prompt, response, _ = get(row)
        return text_chars(prompt, response)
    return count


def char_counts(entry: dict[str, Any], path: Path) -> tuple[int, dict[str, float]]:
    """(rows, :func:`describe` of their characters) of a dataset file, streamed."""
    count = row_chars(entry)
    lengths = array("q", (count(row) for row in _iter_rows(path)))
    return len(lengths), describe(lengths)


def _iter_rows(path: Path) -> Iterator[dict]:
    if path.is_dir():
        for p in sorted(path.iterdir()):
            if p.is_file() and readers.base_suffix(p) in readers.SUPPORTED:
                yield from _iter_rows(p)
        return
    for rec in readers.read(path):
        if rec.obj is not None:
            yield rec.obj


def describe(values: array) -> dict[str, float]:
    if not len(values):
        return {"count": 0}
    import numpy as np

    a = np.frombuffer(values, dtype=np.int64) if values.typecode == "q" else np.asarray(values)
    p = np.percentile(a, [50, 90, 99])
    return {"count": int(a.size), "mean": round(float(a.mean()), 1), "min": int(a.min()), "p50": float(p[0]),
            "p90": float(p[1]), "p99": float(p[2]), "max": int(a.max())}


def compute(name: str, project: Path, *, tokenizer: str | None = None, plots: bool = True,
            limit: int | None = None) -> dict[str, Any]:
    entry, path = resolve(name, project)
    get = _extract(entry)
    tok = load_tokenizer(tokenizer) if tokenizer else None
    prompt_chars, response_chars, total_chars, turns = array("q"), array("q"), array("q"), array("q")
    tokens = array("q")
    seen: set[int] = set()
    duplicates = 0
    sources: Counter[str] = Counter()
    batch: list[str] = []

    def flush() -> None:
        if batch:
            enc = tok(batch, add_special_tokens=False)["input_ids"]
            tokens.extend(len(ids) for ids in enc)
            batch.clear()

    rows = 0
    total = (_count_rows(path) if path.is_file() else None) if progress.enabled() else None
    with progress.bar(f"reading {name}", total=min(total, limit) if total and limit else total) as bar:
        for row in _iter_rows(path):
            if limit and rows >= limit:
                break
            rows += 1
            if rows % 4096 == 0:
                bar.update(completed=rows)
            prompt, response, n_turns = get(row)
            prompt_chars.append(len(prompt))
            response_chars.append(len(response))
            total_chars.append(text_chars(prompt, response))
            turns.append(n_turns)
            h = key_hash(dedup_key([prompt, response]))
            if h in seen:
                duplicates += 1
            else:
                seen.add(h)
            src = row.get("source")
            if isinstance(src, str):
                sources[src] += 1
            if tok is not None:
                batch.append(prompt + "\n" + response)
                if len(batch) >= 512:
                    flush()
        bar.update(completed=rows)
    if tok is not None:
        flush()
    if rows == 0:
        raise FactoryKitError(f"{name}: {path} has no readable rows")

    kind = kind_of(entry)
    result: dict[str, Any] = {
        "name": name, "file": os.path.relpath(path, project), "bytes": path.stat().st_size if path.is_file() else None,
        "format": kind, "rows": rows, "duplicates": duplicates,
        "chars": {"prompt": describe(prompt_chars), "response": describe(response_chars),
                  "total": describe(total_chars)},
        "turns": describe(turns) if kind not in ("pt",) else None,
        "sources": dict(sources.most_common(20)), "source_count": len(sources),
    }
    if tok is not None:
        import numpy as np

        t = np.frombuffer(tokens, dtype=np.int64)
        result["tokens"] = {**describe(tokens), "total": int(t.sum()),
                            "over_cutoff": {str(c): int((t > c).sum()) for c in CUTOFFS},
                            "tokenizer": str(tokenizer)}
    qfile = quarantine_file(project, name)
    if qfile.exists():
        reasons: Counter[str] = Counter()
        with open(qfile, "rb") as fh:
            for line in fh:
                try:
                    reasons[json.loads(line).get("kind", "?")] += 1
                except json.JSONDecodeError:
                    reasons["?"] += 1
        result["quarantine"] = {"file": os.path.relpath(qfile, project), "reasons": dict(reasons)}
    out_dir = paths.data_dir(project) / "stats" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        result["plots"] = [os.path.relpath(p, project) for p in _plot(out_dir, name, total_chars, tokens, turns, kind)]
    io.write_json(out_dir / "stats.json", result)
    result["stats_file"] = os.path.relpath(out_dir / "stats.json", project)
    return result


def _plot(out_dir: Path, name: str, chars: array, tokens: array, turns: array, kind: str) -> list[Path]:
    from factory_kit.core import charts

    plt = charts.pyplot()  # Agg, and a CJK font for Chinese names when one is installed

    made = []
    series = [("chars", chars, "characters per row (prompt + response)")]
    if len(tokens):
        series.append(("tokens", tokens, "tokens per row (prompt + response)"))
    if kind != "pt" and len(turns) and max(turns) > 1:
        series.append(("turns", turns, "assistant turns per conversation"))
    for stem, values, title in series:
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        data = list(values) if len(values) < 200_000 else list(values)[::max(1, len(values) // 200_000)]
        if stem == "turns":  # whole numbers: one bar per value
            lo, hi = min(data), max(data)
            bins: Any = [x - 0.5 for x in range(lo, hi + 2)]
        else:
            bins = 50 if len(data) >= 500 else max(5, min(30, len(set(data))))
        ax.hist(data, bins=bins, color="#3b7dd8", edgecolor="white")
        ax.set_title(f"{name}: {title}")
        ax.set_xlabel(stem)
        ax.set_ylabel("rows")
        fig.tight_layout()
        target = out_dir / f"{stem}.png"
        fig.savefig(target)
        plt.close(fig)
        made.append(target)
    return made


def list_registry(project: Path) -> list[dict[str, Any]]:
    """Every entry of dataset_info.json with its file, size, rows and format."""
    reg_dir = paths.registry_dir(project)
    info = registry.load(reg_dir)
    out = []
    for name in sorted(info):
        entry = info[name]
        item: dict[str, Any] = {"name": name, "format": kind_of(entry) if isinstance(entry, dict) else "?"}
        fname = entry.get("file_name") if isinstance(entry, dict) else None
        if fname is None:
            item.update({"file": entry.get("hf_hub_url") or entry.get("script_url") or "?", "bytes": None,
                         "rows": None, "missing": False})
        else:
            p = (reg_dir / fname).resolve()
            item["file"] = os.path.relpath(p, project)
            item["missing"] = not p.exists()
            item["bytes"] = p.stat().st_size if p.is_file() else None
            item["rows"] = _count_rows(p) if p.is_file() else None
        out.append(item)
    return out


def _count_rows(path: Path) -> int | None:
    if readers.base_suffix(path) in readers.JSONL_EXT:
        n = 0
        last = b"\n"
        with open(path, "rb") as fh:
            while True:
                block = fh.read(1 << 22)
                if not block:
                    break
                n += block.count(b"\n")
                last = block[-1:]
        return n + (0 if last == b"\n" else 1)
    if readers.base_suffix(path) == ".json" and path.stat().st_size < (64 << 20):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return len(data) if isinstance(data, list) else 1
    return None
