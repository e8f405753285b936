"""Option letters past J: what the importer accepts (up to 26 options), the evaluator runs and
scores, through one shared module (factory_kit/data/mcq_options.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from factory_kit.cli.evaluate import eval_cmd
from factory_kit.data import mcq_options
from factory_kit.data.importer import import_source
from factory_kit.evaluate import benchmarks as bm
from factory_kit.evaluate.extract import extract_letter, process_results

from eval_helpers import always_a_model, write_jsonl

HERBS = ["黄芪", "黄连", "甘草", "人参", "白术", "茯苓", "当归", "川芎", "白芍", "熟地", "柴胡", "升麻"]
TWELVE = "ABCDEFGHIJKL"


def _twelve_option_source(project):
    rows = [
        {"id": "q1", "subject": "中药", "question": "升阳举陷、善升脾胃清阳之气的是？", "options": HERBS, "answer": "L"},
        # one cell holding all twelve, answer given as the option's text
        {"id": "q2", "subject": "中药", "question": "第十二味是？",
         "options": " ".join(f"{x}. {h}" for x, h in zip(TWELVE, HERBS)), "answer": "升麻"},
        {"id": "q3", "subject": "中药", "question": "补气固表的是？", "options": HERBS, "answer": "（A）"},
    ]
    return write_jsonl(project / "twelve.jsonl", rows)


def test_letters_are_parsed_alike_everywhere():
    assert mcq_options.MAX_OPTIONS == 26 and mcq_options.letter(11) == "L"
    assert mcq_options.letters(12) == TWELVE
    with pytest.raises(IndexError):
        mcq_options.letter(26)
    cell = " ".join(f"{x}. {h}" for x, h in zip(TWELVE, HERBS))
    assert [mcq_options.strip_prefix(p.strip(), x) for p, x in zip(mcq_options.split_cell(cell), TWELVE)] == HERBS
    # a letter inside an option's text is not the next option
    assert mcq_options.split_cell("A. 维生素C. 缺乏 B. 维生素D") == ["A. 维生素C. 缺乏 ", "B. 维生素D"]
    for text, expected in [("L", ["L"]), ("答案：（K）。", ["K"]), ("A、L", ["A", "L"]), ("Z", ["Z"]), ("升麻", None)]:
        assert mcq_options.parse_answer(text) == expected, text


def test_extractor_and_scorer_read_letters_past_j():
    assert extract_letter("<think>A 还是 B？</think>答案：L", list(TWELVE)) == "L"
    assert extract_letter("K", list(TWELVE)) == "K"
    assert extract_letter("答案：L", list("ABCD")) is None  # not an option of this item
    doc = {"letters": list(TWELVE), "answer": "L"}
    assert process_results(doc, ["答案是 L"]) == {"acc": 1.0}
    assert process_results(doc, ["答案是 J"]) == {"acc": 0.0}


def test_twelve_options_import_into_a_benchmark_the_evaluator_runs(project, tmp_path):
    report = import_source(_twelve_option_source(project), "twelve")
    assert (report.accepted, report.quarantined) == (3, 0), report.examples
    written = [json.loads(line) for line in report.benchmark.read_text(encoding="utf-8").splitlines()]
    assert [list(it["options"]) for it in written] == [list(TWELVE)] * 3
    assert [it["answer"] for it in written] == ["L", "L", "A"]
    [bench] = bm.resolve_benchmarks(("twelve",))
    tasks = bm.write_tasks([bench], tmp_path / "w")
    [data_file] = tasks.include_dir.glob("*.test.jsonl")
    docs = [json.loads(line) for line in data_file.read_text(encoding="utf-8").splitlines()]
    assert [d["letters"] for d in docs] == [list(TWELVE)] * 3  # lm-eval's choice list: 12 letters
    assert [d["label"] for d in docs] == [11, 11, 0]
    assert "K. 柴胡\nL. 升麻\n答案：" in docs[0]["prompt"]


def test_twelve_options_are_scored_by_lm_eval(project, tiny_model, tmp_path):
    """A model that always answers " L" is right exactly on the items whose answer is L."""
    always_l = always_a_model(tiny_model, tmp_path / "always-l", letter="L", letters=TWELVE)
    import_source(_twelve_option_source(project), "twelve")
    result = CliRunner().invoke(eval_cmd, ["--model", str(always_l), "-b", "twelve", "--out", "outputs/eval-l", "-v"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Selected Tasks" in result.output, result.output  # -v: lm-eval's own log lines on screen too
    assert "fatal: not a git repository" not in result.output  # never worth the screen
    items = [json.loads(line) for line in
             (project / "outputs" / "eval-l" / "model.twelve.items.jsonl").read_text().splitlines()]
    assert [(it["answer"], it["predicted"], it["correct"]) for it in items] == \
        [("L", "L", True), ("L", "L", True), ("A", "L", False)]
    data = bm.load_result(project / "outputs" / "eval-l" / "model.twelve.json")
    assert (data["overall"]["correct"], data["overall"]["n"]) == (2, 3)
