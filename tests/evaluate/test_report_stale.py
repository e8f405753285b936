"""`report` after `train --resume`: benchmark results of the old adapter are flagged stale and left out
of this run's table; an interrupted run says how to continue; no `git checkout` outside git."""

from __future__ import annotations

import json
import os

import pytest

from factory_kit.evaluate.report import build_report
from factory_kit.run import records


def _result(label: str, accuracy: float, **extra) -> dict:
    subjects = {"tcm": {"accuracy": accuracy, "correct": int(accuracy * 10), "n": 10}}
    return {"kind": "benchmark", "label": label, "model": "models/tiny-qwen2", "mode": "loglikelihood", "shots": 0,
            "benchmarks": {"exam": {"accuracy": accuracy, "n": 10, "subjects": subjects}},
            "overall": {"accuracy": accuracy, "correct": int(accuracy * 10), "n": 10}, **extra}


@pytest.fixture
def run(registry_project):
    out = registry_project / "outputs" / "demo-tiny"
    (out / "eval").mkdir(parents=True)
    (out / "adapter_config.json").write_text("{}")
    (out / "adapter_model.safetensors").write_bytes(b"adapter v1")
    (out / "run.json").write_text(json.dumps({"recipe": "recipes/demo-tiny.yaml", "exit_code": 0, "status": "succeeded",
                                              "git_commit": None, "command": ["llamafactory-cli", "train"]}))
    return registry_project, out


def _report(project, out) -> str:
    build_report("recipes/demo-tiny.yaml", html=False, project=project)
    return (out / "report" / "report.md").read_text(encoding="utf-8")


def test_results_of_the_old_adapter_are_flagged_stale_after_resume(run):
    project, out = run
    old = records.weights_identity(out)
    (out / "eval" / "base.json").write_text(json.dumps(_result("base", 0.3, trained_weights=None)))
    (out / "eval" / "finetuned.json").write_text(json.dumps(_result("finetuned", 0.9, trained_weights=old)))
    (out / "eval" / "generation").mkdir()
    (out / "eval" / "generation" / "generation.json").write_text(json.dumps(
        {"kind": "generation", "metrics": {"bleu-4": 12.5}, "datasets": ["tcm_qa_val"], "rows": 3,
         "trained_weights": old}))
    md = _report(project, out)
    assert "| **exam (all)** | 10 | **30.0** | **90.0** |" in md and "Stale" not in md
    assert "| bleu-4 | 12.50 |" in md

    (out / "adapter_model.safetensors").write_bytes(b"adapter v2: train --resume went on")
    md = _report(project, out)
    table = md[md.index("## Benchmarks"):md.index("### Stale")]
    assert "90.0" not in table and "| **exam (all)** | 10 | **30.0** |" in table  # the base model's still count
    stale = md[md.index("### Stale results (not this run's)"):]
    assert "`finetuned.json`: finetuned, 90.0% overall, scored sha256 `" + old["sha256"][:16] in stale
    assert "factory-kit eval recipes/demo-tiny.yaml --baseline" in stale
    assert "factory-kit eval recipes/demo-tiny.yaml --baseline -b" not in md  # Reproduce: no command for stale ones
    assert "| bleu-4 |" not in md and "Stale: `outputs/demo-tiny/eval/generation/generation.json` scored other " \
        "weights" in md


def test_results_written_before_results_recorded_weights_are_judged_by_time(run):
    project, out = run
    path = out / "eval" / "finetuned.json"
    path.write_text(json.dumps(_result("finetuned", 0.9)))  # no trained_weights: an older factory-kit
    os.utime(path, ns=(1, 1))
    md = _report(project, out)
    assert "### Stale" in md and "written before the current weights" in md
    path.write_text(json.dumps(_result("finetuned", 0.9)))
    assert "### Stale" not in _report(project, out)


def test_interrupted_run_and_no_git(run):
    project, out = run
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "status": "interrupted", "exit_code": 130}))
    md = _report(project, out)
    assert "- Run interrupted (exit 130)" in md and "FAILED" not in md
    assert "`factory-kit train recipes/demo-tiny.yaml --resume`" in md
    assert "git checkout" not in md  # the project is not a git repository: no commit to check out
    (out / "run.json").write_text(json.dumps({**record, "git_commit": "abc123"}))
    assert "git checkout abc123" in _report(project, out)
