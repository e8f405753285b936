"""`factory-kit data import|stats|ls` through click: output, exit codes, no tracebacks."""

from __future__ import annotations

import json

from click.testing import CliRunner

from factory_kit.cli.data import data
from factory_kit.core.paths import SAMPLES_DIR


def invoke(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=False)


def test_import_prints_one_line_summary_and_details(project):
    r = invoke("import", str(SAMPLES_DIR / "tcm_qa.jsonl"), "--name", "tcm_qa", "--split", "0.8,0.1,0.1")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "tcm_qa: 80 accepted, 0 quarantined -> data/tcm_qa.jsonl"
    assert "split: tcm_qa_train 64, tcm_qa_val 8, tcm_qa_test 8" in r.output
    assert "registered: tcm_qa, tcm_qa_train, tcm_qa_val, tcm_qa_test (alpaca)" in r.output


def test_import_with_rejects_shows_reasons(project):
    f = project / "x.jsonl"
    f.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}\n'
                 '{"instruction": "c", "output": ""}\nnot json\n', encoding="utf-8")
    r = invoke("import", "x.jsonl", "--name", "x")
    assert r.exit_code == 0
    assert r.output.splitlines()[0] == ("x: 1 accepted, 3 quarantined incl. 1 duplicate "
                                        "(data/quarantine/x.rejected.jsonl) -> data/x.jsonl")
    assert 'x.jsonl:3: field "output" is empty' in r.output and "duplicate" in r.output


def test_import_failure_is_one_line_exit_2(project):
    f = project / "x.jsonl"
    f.write_text('{"instruction": "c", "output": ""}\n', encoding="utf-8")
    r = invoke("import", "x.jsonl", "--name", "x")
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert 'error: x.jsonl:1: field "output" is empty; no row accepted' in " ".join(r.output.split())
    r = invoke("import", "missing.jsonl", "--name", "x")
    assert r.exit_code == 2 and "missing.jsonl: no such file or folder" in r.output
    r = invoke("import", "x.jsonl", "--name", "x", "--format", "yaml")
    assert r.exit_code == 2 and "Invalid value for '--format'" in r.output


def test_import_options_reach_the_import(project):
    r = invoke("import", str(SAMPLES_DIR / "exam_mcq.jsonl"), "--name", "exam", "--split", "0.8,0.2",
               "--stratify", "subject", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["splits"] == {"train": 48, "val": 12} and report["benchmark"] == "data/benchmarks/exam.jsonl"
    assert report["benchmark_dev"] is None
    r = invoke("import", str(SAMPLES_DIR / "medical_o1_cot.jsonl"), "--name", "o1", "--cot-style", "drop",
               "--redact", "--dedup", "near", "--json")
    report = json.loads(r.output)
    assert report["format"] == "cot" and report["accepted"] == 30
    row = json.loads((project / "data" / "o1.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "<think>" not in row["output"]


def test_stats_and_ls(project, tiny_model):
    invoke("import", str(SAMPLES_DIR / "consultations.json"), "--name", "consult")
    invoke("import", str(SAMPLES_DIR / "herb_monographs.txt"), "--name", "herbs", "--chunk-chars", "600")
    r = invoke("stats", "consult", "--tokenizer", str(tiny_model))
    assert r.exit_code == 0, r.output
    assert r.output.startswith("consult: 30 rows, sharegpt, data/consult.jsonl")
    assert "tokens" in r.output and "turns" in r.output and "rows over cutoff_len" in r.output
    out = project / "data" / "stats" / "consult"
    assert {p.name for p in out.iterdir()} == {"stats.json", "chars.png", "tokens.png", "turns.png"}
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["rows"] == 30 and stats["turns"]["min"] == 2 and stats["turns"]["max"] == 3
    assert stats["tokens"]["count"] == 30 and stats["duplicates"] == 0
    r = invoke("stats", "herbs", "--json", "--no-plots")
    stats = json.loads(r.output)
    assert stats["format"] == "pt" and stats["chars"]["total"]["max"] <= 600 and "plots" not in stats
    r = invoke("ls")
    assert r.exit_code == 0
    assert "consult" in r.output and "sharegpt" in r.output and "herbs" in r.output and " pt " in r.output
    items = {i["name"]: i for i in json.loads(invoke("ls", "--json").output)}
    assert items["consult"]["rows"] == 30 and items["consult"]["bytes"] > 0 and items["herbs"]["format"] == "pt"


def test_stats_errors(project):
    r = invoke("stats", "nope")
    assert r.exit_code == 2 and "dataset 'nope' is not in" in r.output and "import it first" in " ".join(r.output.split())
    invoke("import", str(SAMPLES_DIR / "tcm_qa.jsonl"), "--name", "qa")
    r = invoke("stats", "qa", "--tokenizer", "no/such/dir")
    assert r.exit_code == 2 and "--tokenizer no/such/dir: no such folder" in r.output
    (project / "data" / "qa.jsonl").unlink()
    r = invoke("ls")
    assert "(missing)" in r.output


def test_ls_empty(project):
    r = invoke("ls")
    assert r.exit_code == 0 and "no datasets registered yet" in r.output


def test_stats_on_hand_written_entry(project):
    """stats follows any registry entry, e.g. LLaMA-Factory's own demo shape with history."""
    (project / "data").mkdir()
    (project / "data" / "demo.json").write_text(json.dumps([
        {"instruction": "问", "input": "", "output": "答", "history": [["前问", "前答"]]},
        {"instruction": "问2", "input": "", "output": "答2", "history": []}], ensure_ascii=False), encoding="utf-8")
    from factory_kit.data import registry

    registry.register(project / "dataset_info", {"demo": {"file_name": "../data/demo.json",
                                                          "columns": {"prompt": "instruction", "query": "input",
                                                                      "response": "output", "history": "history"}}})
    stats = json.loads(invoke("stats", "demo", "--json", "--no-plots").output)
    assert stats["rows"] == 2 and stats["turns"]["max"] == 2


def test_import_refuses_to_take_over_another_imports_split(project):
    """`--name tcm_qa_train` must not silently replace the split an earlier `--name tcm_qa --split` made."""
    import json

    from click.testing import CliRunner

    from factory_kit.cli.data import data

    src = project / "qa.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"问题{i}", "output": f"回答{i}"}, ensure_ascii=False) + "\n"
                           for i in range(10)), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(data, ["import", str(src), "--name", "tcm_qa", "--split", "0.8,0.2"]).exit_code == 0
    other = project / "other.jsonl"
    other.write_text(json.dumps({"instruction": "别的", "output": "数据"}, ensure_ascii=False) + "\n", encoding="utf-8")
    refused = runner.invoke(data, ["import", str(other), "--name", "tcm_qa_train"])
    assert refused.exit_code == 2
    assert "`tcm_qa_train` is a split of dataset `tcm_qa` (data/meta/tcm_qa.json)" in refused.output
    assert len((project / "data" / "tcm_qa_train.jsonl").read_text(encoding="utf-8").splitlines()) == 8
    # the owner itself re-imports freely (idempotent), and --force takes the name over on purpose
    assert runner.invoke(data, ["import", str(src), "--name", "tcm_qa", "--split", "0.8,0.2"]).exit_code == 0
    # a standalone dataset named like a split is protected from another import's --split too
    assert runner.invoke(data, ["import", str(other), "--name", "x_train"]).exit_code == 0
    refused = runner.invoke(data, ["import", str(src), "--name", "x", "--split", "0.8,0.2"])
    assert refused.exit_code == 2 and "--split would replace `x_train`" in refused.output
    forced = runner.invoke(data, ["import", str(other), "--name", "tcm_qa_train", "--force"])
    assert forced.exit_code == 0, forced.output


def test_samples_registers_what_every_shipped_recipe_names(project):
    """A fresh project: the shipped recipes name sample datasets; the error says how to get them."""
    from factory_kit.cli import main

    runner = CliRunner()
    missing = runner.invoke(main, ["check", "recipes/tcm-lora.yaml"])
    assert missing.exit_code == 2
    assert "`factory-kit data samples` imports them all" in " ".join(missing.output.split())
    r = invoke("samples")
    assert r.exit_code == 0, r.output
    assert "tcm_qa: 80 accepted, 0 quarantined -> tcm_qa, tcm_qa_train, tcm_qa_val" in r.output
    from factory_kit.recipe.checks import importable

    for recipe in ("tcm-lora", "tcm-qlora", "tcm-full-z3", "tcm-pt", "tcm-dpo", "medical-o1-cot"):
        sets = ["--set", "method=lora"] if recipe == "tcm-qlora" and not importable("bitsandbytes") else []
        checked = runner.invoke(main, ["check", f"recipes/{recipe}.yaml", *sets])  # (qlora: the data, not the GPU)
        assert checked.exit_code == 0, (recipe, checked.output)


def test_import_and_stats_show_progress_per_block(project, monkeypatch):
    """Rows done against an estimated total, updated per block of rows (never per row), in the
    parallel path too; `data stats` likewise. (The bar itself is silent when not a terminal.)"""
    import contextlib

    from factory_kit.core import progress
    from factory_kit.data.importer import import_source
    from factory_kit.data.stats import compute

    bars: list[tuple[str, int | None, list]] = []

    class Bar:
        def advance(self, n: float = 1) -> None:
            raise AssertionError("progress is reported as rows done, not per row")

        def update(self, *, completed=None, total=None, description=None) -> None:
            bars[-1][2].append(completed)

    @contextlib.contextmanager
    def bar(description, total=None, unit="rows"):
        bars.append((description, total, []))
        yield Bar()

    monkeypatch.setattr(progress, "bar", bar)
    monkeypatch.setattr(progress, "enabled", lambda: True)
    f = project / "p.jsonl"
    f.write_text("".join(json.dumps({"instruction": f"问{i}", "output": f"答{i}"}, ensure_ascii=False) + "\n"
                         for i in range(10000)), encoding="utf-8")
    calls = []
    for workers in (1, 2):
        r = import_source(f, f"p{workers}", workers=workers, parallel_min_bytes=0,
                          progress=lambda *counts: calls.append(counts))
        assert r.accepted == 10000
        description, total, done = bars[-1]
        assert (description, total, done[-1]) == (f"importing p{workers}", 10000, 10000)
        assert 1 <= len(done) <= 5 and done == sorted(done)
    assert calls[-1] == (10000, 10000, 0)
    compute("p1", project, plots=False)
    description, total, done = bars[-1]
    assert (description, total, done[-1]) == ("reading p1", 10000, 10000) and len(done) <= 5


def test_data_group_offers_select_and_decontaminate():
    from click.testing import CliRunner

    from factory_kit.cli.data import data

    out = CliRunner().invoke(data, ["--help"]).output
    assert "select" in out and "decontaminate" in out
    assert CliRunner().invoke(data, ["select", "--help"]).exit_code == 0


def test_samples_never_replace_your_own_dataset_silently(project):
    invoke("import", str(SAMPLES_DIR / "consultations.json"), "--name", "tcm_qa")
    r = invoke("samples")
    assert r.exit_code == 2 and "tcm_qa (" in r.output and "--force" in r.output
    from factory_kit.data import registry

    assert registry.load(project / "dataset_info")["tcm_qa"]["formatting"] == "sharegpt"  # untouched
    r = invoke("samples", "--force")
    assert r.exit_code == 0 and registry.load(project / "dataset_info")["tcm_qa"]["formatting"] == "alpaca"
    assert invoke("samples").exit_code == 0  # the samples' own names: re-importing them is fine
