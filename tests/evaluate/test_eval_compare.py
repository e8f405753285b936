"""compare on result files of different sizes: the table is over the items both runs scored."""

from __future__ import annotations

import json
from pathlib import Path

from factory_kit.evaluate import benchmarks as bm
from factory_kit.evaluate.compare import compare

from eval_helpers import write_jsonl


def _result(folder: Path, label: str, items: list[dict], limit: int | None = None, items_file: bool = True) -> Path:
    record = {"kind": "benchmark", "label": label, "model": "m", "adapter": None, "mode": "loglikelihood",
              "shots": 0, "limit": limit, **bm.summarize(items)}
    if items_file:
        record["items_file"] = f"{label}.items.jsonl"
        write_jsonl(folder / f"{label}.items.jsonl", items)
    path = folder / f"{label}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def _items(n_per_subject: int, correct) -> list[dict]:
    return [{"benchmark": "exam", "subject": s, "id": f"{s}-{i}", "answer": "A", "predicted": "A",
             "correct": correct(s, i)} for s in ("s1", "s2", "s3") for i in range(n_per_subject)]


def test_compare_different_sizes_uses_the_common_items(tmp_path):
    # base: 60 items, 15 right (25 %); merged (--limit 3): the first 3 per subject, 2 right (22.2 %)
    base = _result(tmp_path, "base", _items(20, lambda s, i: i < 5))
    merged = _result(tmp_path, "merged", _items(3, lambda s, i: s == "s1" and i < 2), limit=3)
    md, _ = compare(base, merged, tmp_path / "cmp")
    text = md.read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "cmp.json").read_text())
    assert summary["n_a"] == 60 and summary["n_b"] == 9 and summary["common_items"] == 9
    overall = summary["rows"][-1]
    assert overall["n"] == 9 and overall["a"] == 1.0 and abs(overall["b"] - 2 / 9) < 1e-9  # base was 9/9 on these
    assert "> **Warning:** the runs scored different items (A: 60, B: 9; --limit None vs 3)" in text
    assert "only the 9 items both scored" in text
    assert "`base.json`), 60 items, 25.0 %" in text and "`merged.json`), 9 items, 22.2 %" in text
    assert "| ALL | **Overall** | 9 | 100.0 | 22.2 |" in text
    # McNemar over the 9 paired items: 7 broken, 0 fixed
    assert summary["paired"]["items"] == 9 and summary["paired"]["broken"] == 7 and summary["paired"]["fixed"] == 0
    assert "Paired over 9 common items" in text


def test_compare_without_items_files_shows_both_ns_and_warns(tmp_path):
    base = _result(tmp_path, "base", _items(20, lambda s, i: i < 5), items_file=False)
    merged = _result(tmp_path, "merged", _items(3, lambda s, i: i < 1), limit=3, items_file=False)
    md, _ = compare(base, merged, tmp_path / "cmp")
    text = md.read_text(encoding="utf-8")
    assert "NOT comparable" in text and "(A: 60, B: 9; --limit None vs 3; no items file" in text
    assert "| N (A / B) |" in text and "| ALL | **Overall** | 60 / 9 | 25.0 | 33.3 | n/a |" in text
    assert all(row["delta"] is None for row in json.loads((tmp_path / "cmp.json").read_text())["rows"])


def test_compare_same_items_has_no_size_warning(tmp_path):
    base = _result(tmp_path, "base", _items(4, lambda s, i: i < 1))
    tuned = _result(tmp_path, "tuned", _items(4, lambda s, i: i < 3))
    text = compare(base, tuned, tmp_path / "cmp")[0].read_text(encoding="utf-8")
    assert "different items" not in text and "| N |" in text and "| ALL | **Overall** | 12 | 25.0 | 75.0 |" in text
