"""Benchmarks through lm-eval on the real tiny model: validation, scoring, per-subject tables,
the always-"A" model (the scorer reads the answer key), generate mode, and bad inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.cli.evaluate import COMMANDS, compare, eval_cmd
from factory_kit.core.errors import FactoryKitError
from factory_kit.evaluate import benchmarks as bm
from factory_kit.evaluate.extract import extract_letter
from factory_kit.core.paths import SAMPLES_DIR

from eval_helpers import always_a_model, write_jsonl

EXAM = SAMPLES_DIR / "exam_mcq.jsonl"

ITEM = {"id": "q1", "subject": "方剂", "question": "四君子汤不含？",
        "options": {"A": "人参", "B": "白术", "C": "茯苓", "D": "当归"}, "answer": "D", "explanation": "..."}


def _bad(tmp_path, **changes) -> Path:
    good = dict(ITEM, id="q0")
    bad = {**ITEM, **changes}
    for key, value in changes.items():
        if value is None:
            bad.pop(key)
    return write_jsonl(tmp_path / "bad.jsonl", [good, bad])


def test_commands_are_named_for_the_main_cli():
    assert [c.name for c in COMMANDS] == ["eval", "compare", "report"]


def test_options_as_list_and_map_normalise(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [ITEM, {**ITEM, "id": "q2", "options": ["甲", "乙", "丙"], "answer": "c"}])
    bench = bm.load_benchmark(path)
    assert bench.items[1]["options"] == {"A": "甲", "B": "乙", "C": "丙"}
    assert bench.items[1]["answer"] == "C"
    assert bench.subjects == ["方剂"]


@pytest.mark.parametrize("changes, message", [
    ({"options": None}, "bad.jsonl:2: missing `options`"),
    ({"options": {}}, "bad.jsonl:2: missing `options`"),
    ({"answer": "E"}, "bad.jsonl:2: answer 'E' is not among the options (A, B, C, D)"),
    ({"answer": None}, "bad.jsonl:2: missing `answer`"),
    ({"answer": 1}, "bad.jsonl:2: `answer` must be one option letter like \"B\", got 1"),
    ({"answer": "AC"}, "bad.jsonl:2: answer 'AC': multi-answer items are not supported for scoring "
                       "(one letter expected)"),
    ({"answer": "A,C"}, "multi-answer items are not supported for scoring (one letter expected)"),
    ({"options": {"A": "x", "C": "y"}}, "bad.jsonl:2: option letters AC must be consecutive"),
    ({"options": {"A": "x", "B": ""}}, "bad.jsonl:2: option B is empty"),
    ({"question": ""}, "bad.jsonl:2: missing `question`"),
    ({"id": "q0"}, "bad.jsonl:2: duplicate id 'q0' (first on line 1)"),
])
def test_bad_benchmark_rows_name_file_and_line(tmp_path, changes, message):
    with pytest.raises(FactoryKitError, match=None) as err:
        bm.load_benchmark(_bad(tmp_path, **changes))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_array_benchmark_file_is_accepted(tmp_path):
    path = tmp_path / "arr.json"
    path.write_text(json.dumps([ITEM, {**ITEM, "id": "q2", "answer": "b"}], ensure_ascii=False, indent=2),
                    encoding="utf-8")
    bench = bm.load_benchmark(path)
    assert bench.name == "arr" and [it["answer"] for it in bench.items] == ["D", "B"]
    path.write_text(json.dumps([ITEM, {**ITEM, "id": "q2", "answer": 1}]), encoding="utf-8")
    with pytest.raises(FactoryKitError) as err:
        bm.load_benchmark(path)
    assert "arr.json: item 2: `answer` must be one option letter like \"B\", got 1" in str(err.value)


def test_jsonl_line_holding_an_array_says_how_to_convert(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps([ITEM]) + "\n" + json.dumps([ITEM]) + "\n", encoding="utf-8")
    with pytest.raises(FactoryKitError) as err:
        bm.load_benchmark(path)
    assert "lines.jsonl:1: expected one JSON object per line (JSON Lines), got list" in str(err.value)
    assert "factory-kit data import FILE --format mcq" in str(err.value)


def test_bad_benchmark_fails_on_the_cli_with_one_red_line(tmp_path, tiny_model):
    path = _bad(tmp_path, answer="F")
    result = CliRunner().invoke(eval_cmd, ["--model", str(tiny_model), "-b", str(path)])
    assert result.exit_code != 0
    out = result.output.strip()
    assert out.count("\n") == 0, out
    assert "error:" in out and "bad.jsonl:2: answer 'F' is not among the options" in out
    assert "Traceback" not in out


def test_missing_adapter_fails_with_one_clear_message(tmp_path, tiny_model, project):
    result = CliRunner().invoke(eval_cmd, ["--model", str(tiny_model), "--adapter", "outputs/nope", "-b", str(EXAM)])
    assert result.exit_code != 0
    assert result.output.strip().count("\n") == 0
    assert "adapter outputs/nope does not exist" in result.output


def test_uncached_hub_model_is_refused_before_lm_eval_in_the_options_terms(project):
    """lm-eval runs offline: a hub id not in the local cache fails at once, and `eval --model` is told
    to pass --model (there is no recipe key to set), with `hf download` (not huggingface-cli)."""
    result = CliRunner().invoke(eval_cmd, ["--model", "Qwen/Qwen2.5-7B-Instruct", "-b", str(EXAM)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0, result.output
    assert "`hf download Qwen/Qwen2.5-7B-Instruct --local-dir models/NAME`" in result.output
    assert "pass `--model models/NAME`" in result.output
    assert "set `model:" not in result.output and "huggingface-cli" not in result.output


def test_adapter_folder_without_adapter_config(tmp_path, tiny_model):
    with pytest.raises(FactoryKitError, match="no adapter_config.json"):
        bm.check_model_dirs(tiny_model, tmp_path)


def test_unknown_benchmark_name_lists_the_known_ones(project):
    write_jsonl(project / "data" / "benchmarks" / "cmexam.jsonl", [ITEM])
    with pytest.raises(FactoryKitError, match=r"benchmark 'cmb' not found.*there: cmexam"):
        bm.resolve_benchmarks(["cmb"])
    assert [b.name for b in bm.resolve_benchmarks([])] == ["cmexam"]
    assert [b.name for b in bm.resolve_benchmarks(["cmexam"])] == ["cmexam"]


def test_shipped_sample_exam_is_valid():
    bench = bm.load_benchmark(EXAM)
    assert len(bench.items) >= 20 and len(bench.subjects) >= 2


@pytest.mark.parametrize("text, letter", [
    ("<think>A 不对，B 也许</think>答案：C", "C"),
    ("<think>还在想 A", None),
    ("The answer is (B).", "B"),
    ("正确答案为【D】", "D"),
    ("选项E", None),
    ("", None),
    ("A", "A"),
])
def test_extract_letter_reads_after_think(text, letter):
    assert extract_letter(text, ["A", "B", "C", "D"]) == letter


def test_few_shot_never_shows_an_item_its_own_answer(tmp_path):
    items = [dict(ITEM, id=str(i), subject="s1" if i < 4 else "s2") for i in range(5)]
    bench = bm.load_benchmark(write_jsonl(tmp_path / "b.jsonl", items))
    tasks = bm.write_tasks([bench], tmp_path / "w", shots=2)
    configs = {p.stem: p.read_text() for p in tasks.include_dir.glob("*.yaml")}
    # s1 has 4 items: shots come from its own test split, which lm-eval filters per item;
    # s2 has 1 item: shots come from other subjects, never from its own test split.
    kinds = sorted("fewshot_split: test" in text for text in configs.values())
    assert kinds == [False, True]
    for name, text in configs.items():
        if "fewshot_split: fewshot" in text:
            ids = {json.loads(l)["id"] for l in (tasks.include_dir / f"{name}.fewshot.jsonl").read_text().splitlines()}
            own = {json.loads(l)["id"] for l in (tasks.include_dir / f"{name}.test.jsonl").read_text().splitlines()}
            assert not ids & own


@pytest.fixture(scope="module")
def always_a(tmp_path_factory, tiny_model) -> Path:
    return always_a_model(tiny_model, tmp_path_factory.mktemp("degenerate") / "always-a")


def test_always_a_model_scores_the_share_of_a_answers(tmp_path, always_a, project):
    """The scorer really reads the answer key: a model that always answers "A" scores exactly the
    share of A answers, per subject and overall, not 100% (the leaked-key check)."""
    items = [json.loads(l) for l in EXAM.read_text(encoding="utf-8").splitlines() if l.strip()]
    # One deliberately skewed subject (every answer A) and one with no A at all, next to the shipped exam.
    items += [dict(ITEM, id=f"leak-{i}", subject="leaked_key_all_A", answer="A") for i in range(3)]
    items += [dict(ITEM, id=f"none-{i}", subject="no_A", answer="BCD"[i]) for i in range(3)]
    path = write_jsonl(project / "data" / "benchmarks" / "exam.jsonl", items)
    result = CliRunner().invoke(eval_cmd, ["--model", str(always_a), "-b", "exam", "--out", "outputs/eval-a"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # quiet by default: lm-eval's own logs (and git's "not a git repository" from its working folder,
    # which is no git repository here) stay in the .log; the screen has our lines and the table
    assert "fatal: not a git repository" not in result.output and "Selected Tasks" not in result.output, result.output
    assert len(result.output.splitlines()) < 40, result.output
    log = (project / "outputs" / "eval-a" / ".model.exam" / "lm_eval.log").read_text(encoding="utf-8")
    assert "Selected Tasks" in log and "fatal: not a git repository" in log
    data = bm.load_result(project / "outputs" / "eval-a" / "model.exam.json")
    per_subject = Counter(it["subject"] for it in items)
    a_share = Counter(it["subject"] for it in items if it["answer"] == "A")
    subjects = data["benchmarks"]["exam"]["subjects"]
    assert set(subjects) == set(per_subject)
    for subject, n in per_subject.items():
        assert subjects[subject]["n"] == n
        assert subjects[subject]["accuracy"] == pytest.approx(a_share[subject] / n, abs=1e-12), subject
    assert subjects["leaked_key_all_A"]["accuracy"] == 1.0
    assert subjects["no_A"]["accuracy"] == 0.0
    overall = sum(a_share.values()) / len(items)
    assert data["overall"]["accuracy"] == pytest.approx(overall, abs=1e-12) and overall < 0.5
    predicted = [json.loads(l)["predicted"] for l in (project / "outputs" / "eval-a" / "model.exam.items.jsonl").read_text().splitlines()]
    assert set(predicted) == {"A"} and len(predicted) == len(items)
    assert data["benchmark_files"]["exam"]["sha256"] == bm.Benchmark("exam", path, []).sha256()
    # per-subject table printed
    assert "tcm_basic_theory" in result.output and "overall" in result.output


def test_generate_mode_runs_end_to_end(tmp_path, tiny_model):
    """generate_until + letter extraction through lm-eval (tiny model: gibberish, so accuracy is low but defined)."""
    bench = bm.load_benchmark(write_jsonl(tmp_path / "g.jsonl", [dict(ITEM, id=str(i)) for i in range(3)]))
    path = bm.evaluate([bench], tiny_model, None, tmp_path / "out", label="gen", mode="generate",
                       max_gen_tokens=8, echo=False)
    data = json.loads(path.read_text())
    assert data["mode"] == "generate" and data["chat_template"] is True
    assert data["overall"]["n"] == 3
    items = [json.loads(l) for l in (tmp_path / "out" / "gen.items.jsonl").read_text().splitlines()]
    for it in items:
        assert "output" in it
        assert it["correct"] == (it["predicted"] == "D")


def test_compare_cli_rejects_a_non_result_file(tmp_path):
    bogus = tmp_path / "x.json"
    bogus.write_text("{}")
    result = CliRunner().invoke(compare, [str(bogus), str(bogus)])
    assert result.exit_code != 0 and "not a factory-kit benchmark result" in result.output


def test_hub_style_benchmark_from_a_dataset_folder(tmp_path, project):
    """`hf:ID[:CONFIG][@SPLIT]` goes through datasets.load_dataset; a local folder stands in for the hub."""
    folder = tmp_path / "ceval-like"
    folder.mkdir()
    (folder / "val.csv").write_text("id,question,A,B,C,D,answer,explanation\n"
                                    "0,肝开窍于？,目,舌,口,鼻,A,\n1,心主？,血脉,运化,疏泄,纳气,A,\n", encoding="utf-8")
    (bench,) = bm.resolve_benchmarks([f"hf:{folder}@validation"])
    assert len(bench.items) == 2 and bench.items[0]["options"]["A"] == "目" and bench.items[1]["answer"] == "A"
    with pytest.raises(FactoryKitError, match="hf:nobody/nothing-here: cannot load"):
        bm.resolve_benchmarks(["hf:nobody/nothing-here"])


def test_result_names_keep_other_benchmarks_and_shots_apart():
    """`eval -b cmexam` after `eval -b hospital` (or 5-shot after 0-shot) must not overwrite it."""
    from types import SimpleNamespace

    from factory_kit.evaluate import EvalOptions, result_suffix

    benches = [SimpleNamespace(name="hospital"), SimpleNamespace(name="cmexam")]
    assert result_suffix(EvalOptions(), benches) == ""  # the default: every benchmark, zero-shot
    assert result_suffix(EvalOptions(benchmarks=("x", "y")), benches) == ".cmexam+hospital"
    assert result_suffix(EvalOptions(benchmarks=("x",), shots=5), benches[:1]) == ".hospital.5shot"
    assert result_suffix(EvalOptions(shots=1), benches) == ".1shot"
    hub = [SimpleNamespace(name="hf:owner/ceval:clinical_medicine@val")]
    assert result_suffix(EvalOptions(benchmarks=("hf:owner/ceval",)), hub) == ".hf-owner-ceval-clinical_medicine-val"


def test_bom_and_non_utf8_benchmark_files(tmp_path):
    line = json.dumps(dict(ITEM, id="q1"), ensure_ascii=False) + "\n"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + line.encode("utf-8"))
    assert len(bm.load_benchmark(bom).items) == 1
    gbk = tmp_path / "gbk.jsonl"
    gbk.write_bytes(line.encode("utf-8") + json.dumps(dict(ITEM, id="q2"), ensure_ascii=False).encode("gbk"))
    with pytest.raises(FactoryKitError, match=r"gbk.jsonl:2: not UTF-8 \(byte 0x[0-9a-f]{2}\); re-save the file as UTF-8"):
        bm.load_benchmark(gbk)


def test_two_files_with_the_same_name_are_told_apart(tmp_path, project):
    for folder in ("a", "b"):
        write_jsonl(tmp_path / folder / "exam.jsonl", [dict(ITEM, id="q1")])
    with pytest.raises(FactoryKitError, match="have the same name 'exam'"):
        bm.resolve_benchmarks([str(tmp_path / "a" / "exam.jsonl"), str(tmp_path / "b" / "exam.jsonl")])
    with pytest.raises(FactoryKitError, match="benchmark 'exam' given twice"):
        bm.resolve_benchmarks([str(tmp_path / "a" / "exam.jsonl")] * 2)


def test_items_without_subject_keep_the_file_name_out_of_the_prompt(tmp_path):
    item = {k: v for k, v in ITEM.items() if k != "subject"}
    path = write_jsonl(tmp_path / "valid.jsonl", [dict(item, id="q1")])
    bench = bm.load_benchmark(path)
    assert bench.subjects == ["valid"]
    bm.write_tasks([bench], tmp_path / "tasks", shots=0, mode="loglikelihood", max_gen_tokens=16)
    text = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "tasks").rglob("*.yaml"))
    assert "以下是单项选择题" in text and "valid考试" not in text
