"""The files an import leaves: readable by others (umask modes, kept modes), and `data rm`, which
removes a dataset and everything made for it."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from factory_kit.cli.data import data
from factory_kit.core.paths import SAMPLES_DIR
from factory_kit.data.importer import import_source


def invoke(*args: str):
    return CliRunner().invoke(data, list(args), catch_exceptions=False)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _rows(path, n, tag=""):
    path.write_text("".join(json.dumps({"instruction": f"{tag}问题{i}", "output": f"答案{i}"}, ensure_ascii=False) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def test_import_files_get_the_umask_mode(project, umask_022):
    import_source(_rows(project / "a.jsonl", 20), "a", split="0.5,0.5")
    written = [project / "dataset_info" / "dataset_info.json", project / "data" / "a.jsonl",
               project / "data" / "a_train.jsonl", project / "data" / "a_val.jsonl", project / "data" / "meta" / "a.json"]
    assert {str(p.relative_to(project)): oct(_mode(p)) for p in written} == {
        str(p.relative_to(project)): "0o644" for p in written}


def test_reimport_keeps_the_modes_the_user_set(project, umask_022):
    """A shared project: the registry group-writable, a dataset private; a re-import keeps both."""
    import_source(_rows(project / "a.jsonl", 20), "a", split="0.5,0.5")
    registry_file = project / "dataset_info" / "dataset_info.json"
    registry_file.chmod(0o664)
    (project / "data" / "a_train.jsonl").chmod(0o640)
    import_source(_rows(project / "b.jsonl", 30, "乙"), "b")
    import_source(_rows(project / "a.jsonl", 24, "甲"), "a", split="0.5,0.5")
    assert _mode(registry_file) == 0o664
    assert _mode(project / "data" / "a_train.jsonl") == 0o640
    assert _mode(project / "data" / "b.jsonl") == 0o644


def _files(project):
    return sorted(str(p.relative_to(project)) for p in project.rglob("*")
                  if p.is_file() and not str(p.relative_to(project)).startswith(("recipes", "raw")))


def test_rm_removes_everything_an_mcq_import_wrote(project):
    (project / "raw").mkdir()
    src = project / "raw" / "exam.jsonl"
    src.write_text((SAMPLES_DIR / "exam_mcq.jsonl").read_text(encoding="utf-8") + '{"question": "坏"}\n', encoding="utf-8")
    assert invoke("import", str(src), "--name", "exam", "--split", "0.6,0.2,0.2").exit_code == 0
    assert invoke("import", str(SAMPLES_DIR / "herb_monographs.txt"), "--name", "herbs").exit_code == 0
    assert invoke("stats", "exam", "--no-plots").exit_code == 0
    before = _files(project)
    r = invoke("rm", "exam")
    assert r.exit_code == 0, r.output
    gone = ["data/benchmarks/exam.dev.jsonl", "data/benchmarks/exam.jsonl", "data/exam.jsonl", "data/exam_test.jsonl",
            "data/exam_train.jsonl", "data/exam_val.jsonl", "data/meta/exam.json", "data/quarantine/exam.rejected.jsonl",
            "data/stats/exam/stats.json"]
    assert sorted(set(before) - set(_files(project))) == gone
    assert r.output.splitlines()[0] == "unregistered: exam, exam_train, exam_val, exam_test (dataset_info/dataset_info.json)"
    assert "removed: data/quarantine/exam.rejected.jsonl" in r.output and "removed: data/stats/exam/" in r.output
    info = json.loads((project / "dataset_info" / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {"herbs"}  # the other dataset untouched
    assert (project / "data" / "herbs.jsonl").exists()


def test_rm_refuses_unknown_names_and_splits(project):
    assert invoke("import", str(SAMPLES_DIR / "herb_monographs.txt"), "--name", "herbs", "--split", "0.5,0.5").exit_code == 0
    r = CliRunner().invoke(data, ["rm", "herb"])
    assert r.exit_code == 2
    assert r.output.strip() == "error: data rm herb: no such dataset (known: herbs, herbs_train, herbs_val)"
    r = CliRunner().invoke(data, ["rm", "herbs_val"])
    assert r.exit_code == 2 and "`herbs_val` is a split of dataset `herbs`; remove `herbs`" in r.output
    assert (project / "data" / "herbs_val.jsonl").exists()


def test_rm_refuses_a_dataset_a_recipe_uses_unless_forced(project):
    """The shipped recipes copied into the project train on tcm_qa_train and evaluate on tcm_qa_val."""
    assert invoke("import", str(SAMPLES_DIR / "tcm_qa.jsonl"), "--name", "tcm_qa", "--split", "0.8,0.1,0.1").exit_code == 0
    r = CliRunner().invoke(data, ["rm", "tcm_qa"])
    assert r.exit_code == 2
    assert "recipes/tcm-lora.yaml (datasets: tcm_qa_train, eval_datasets: tcm_qa_val)" in r.output
    assert r.output.rstrip().endswith("take it out of those recipes first, or pass --force")
    assert (project / "data" / "tcm_qa_train.jsonl").exists()
    r = CliRunner().invoke(data, ["rm", "tcm_qa", "--force"])
    assert r.exit_code == 0
    assert "warning: tcm_qa was used by recipes/" in r.output
    assert not (project / "data" / "tcm_qa_train.jsonl").exists() and not (project / "data" / "meta" / "tcm_qa.json").exists()


def test_rm_of_a_hand_registered_dataset_keeps_its_file(project):
    own = project / "mine.json"
    own.write_text('[{"instruction": "a", "output": "b"}]', encoding="utf-8")
    (project / "dataset_info").mkdir()
    (project / "dataset_info" / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "../mine.json"}}))
    r = invoke("rm", "mine")
    assert r.exit_code == 0
    assert r.output.splitlines() == ["unregistered: mine (dataset_info/dataset_info.json)",
                                     "kept: mine.json (registered by hand, not written by an import)"]
    assert own.exists() and json.loads((project / "dataset_info" / "dataset_info.json").read_text()) == {}
