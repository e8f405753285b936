"""`check`/`render`/`train` warn when a recipe trains on a dataset that was never decontaminated
against the benchmarks `factory-kit eval` scores (data/benchmarks/*.jsonl), or whose record is
older than the benchmark file or the dataset's file. Never an error; never in rendered files."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.core.paths import SAMPLES_DIR
from factory_kit.data.importer import import_source
from factory_kit.data.samples import import_samples
from factory_kit.recipe.checks import decontamination_warnings
from factory_kit.recipe.load import load
from factory_kit.select.decontaminate import decontaminate

FIX_QA = "`factory-kit data decontaminate tcm_qa --against tcm_exam`"


@pytest.fixture
def proj(project):
    import_samples(project)
    return project


def warnings_for(proj, *sets: str, recipe: str = "recipes/tcm-lora.yaml") -> list[str]:
    return decontamination_warnings(load(recipe, list(sets)), proj)


def about(warnings: list[str], name: str) -> list[str]:
    return [w for w in warnings if f"training dataset `{name}`" in w]


def test_check_warns_then_decontaminate_clears_it_and_a_reimport_brings_it_back(proj):
    checked = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml"])
    assert checked.exit_code == 0, checked.output
    assert "ok recipes/tcm-lora.yaml" in checked.stdout
    [line] = [ln for ln in checked.stderr.splitlines() if "`tcm_qa_train`" in ln]
    assert line.startswith("warning: ") and "never decontaminated against benchmark tcm_exam" in line
    assert FIX_QA in line and "data/benchmarks/tcm_exam.jsonl" in line
    assert about(warnings_for(proj), "tcm_consultations")  # every training dataset is checked

    decontaminate("tcm_qa", ["tcm_exam"], project=proj)  # cleans tcm_qa and its splits
    assert not about(warnings_for(proj), "tcm_qa_train")
    assert about(warnings_for(proj), "tcm_consultations")
    decontaminate("tcm_consultations", ["tcm_exam"], project=proj)
    assert warnings_for(proj) == []
    checked = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml"])
    assert checked.exit_code == 0 and "decontaminat" not in checked.output  # (machine warnings aside)

    import_source(SAMPLES_DIR / "tcm_qa.jsonl", "tcm_qa", "alpaca", project=proj, split=(0.9, 0.1), seed=42)
    [again] = about(warnings_for(proj), "tcm_qa_train")
    assert "never decontaminated" in again and FIX_QA in again


def test_a_newer_benchmark_file_or_an_edited_dataset_brings_it_back(proj):
    decontaminate("tcm_qa", ["tcm_exam"], project=proj)
    assert not about(warnings_for(proj), "tcm_qa_train")
    bench = proj / "data" / "benchmarks" / "tcm_exam.jsonl"
    later = time.time() + 5
    os.utime(bench, (later, later))
    [stale] = about(warnings_for(proj), "tcm_qa_train")
    assert "before data/benchmarks/tcm_exam.jsonl last changed" in stale and FIX_QA in stale

    earlier = time.time() - 60
    os.utime(bench, (earlier, earlier))  # the exam as it was when checked again
    decontaminate("tcm_qa", ["tcm_exam"], project=proj)
    assert not about(warnings_for(proj), "tcm_qa_train")
    train = proj / "data" / "tcm_qa_train.jsonl"
    with train.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"instruction": "新加的问题", "input": "", "output": "答"}, ensure_ascii=False) + "\n")
    os.utime(train, (later, later))
    [edited] = about(warnings_for(proj), "tcm_qa_train")
    assert "changed after it was decontaminated" in edited and FIX_QA in edited


def test_another_benchmark_needs_its_own_record_and_the_fix_names_every_one(proj):
    decontaminate("tcm_qa", ["tcm_exam"], project=proj)
    shutil.copy(proj / "data" / "benchmarks" / "tcm_exam.jsonl", proj / "data" / "benchmarks" / "hospital.jsonl")
    [line] = about(warnings_for(proj), "tcm_qa_train")
    assert "never decontaminated against benchmark hospital" in line
    # decontaminate keeps one record, so the fix re-checks every benchmark at once
    assert "`factory-kit data decontaminate tcm_qa --against hospital --against tcm_exam`" in line
    decontaminate("tcm_qa", ["hospital", "tcm_exam"], project=proj)
    assert not about(warnings_for(proj), "tcm_qa_train")


def test_quiet_without_benchmarks_and_for_the_exam_itself(proj):
    assert warnings_for(proj, "datasets=[tcm_exam]", "eval_datasets=[]") == []  # its own import
    import_source(SAMPLES_DIR / "exam_mcq.jsonl", "tcm_exam", "mcq", project=proj, split=(0.8, 0.2), seed=1)
    assert warnings_for(proj, "datasets=[tcm_exam_train]", "eval_datasets=[]") == []  # held out by the split
    shutil.rmtree(proj / "data" / "benchmarks")
    assert warnings_for(proj) == []
    checked = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml"])
    assert checked.exit_code == 0 and "decontaminat" not in checked.output  # (machine warnings aside)


def test_a_hand_registered_dataset_is_covered_by_its_decontamination_report(proj):
    info_path = proj / "dataset_info" / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    shutil.copy(proj / "data" / "tcm_qa.jsonl", proj / "data" / "hand.jsonl")
    info["hand"] = {**info["tcm_qa"], "file_name": "../data/hand.jsonl"}
    info_path.write_text(json.dumps(info), encoding="utf-8")
    [line] = about(warnings_for(proj, "datasets=[hand]"), "hand")
    assert "`factory-kit data decontaminate hand --against tcm_exam`" in line
    decontaminate("hand", ["tcm_exam"], project=proj)
    assert warnings_for(proj, "datasets=[hand]") == []


def test_render_shows_it_on_the_console_only_and_train_before_the_launch(proj, monkeypatch):
    rendered = CliRunner().invoke(main, ["render", "recipes/tcm-lora.yaml"])
    assert rendered.exit_code == 0, rendered.output
    assert FIX_QA in rendered.stderr
    for path in (proj / "build" / "tcm-lora").iterdir():
        assert "decontaminat" not in path.read_text(encoding="utf-8")

    from factory_kit.run import launch, train

    def stop(*args, **kwargs):
        raise FactoryKitError("launch reached")

    monkeypatch.setattr(launch, "llamafactory", stop)
    monkeypatch.setattr(train, "check_launch", lambda ctx, project: None)  # no GPU packages needed here
    seen: list[str] = []
    with pytest.raises(FactoryKitError, match="launch reached"):
        train.train("recipes/tcm-lora.yaml", on_warning=seen.append)
    assert about(seen, "tcm_qa_train") and FIX_QA in about(seen, "tcm_qa_train")[0]
