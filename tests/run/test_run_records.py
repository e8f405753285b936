"""Run records are written by the run layer, for train and eval alike: run.json on success and on
failure (exit code, error), and runs.jsonl keeping every run where asked."""

from __future__ import annotations

import json

import pytest

from factory_kit.core.errors import FactoryKitError, LaunchError
from factory_kit.run import records


def test_recording_writes_run_json_and_history(tmp_path):
    path = tmp_path / "eval" / "run.json"
    with records.recording(path, None, tmp_path, ["factory-kit", "eval"], {"kind": "eval", "results": []},
                           history=True) as extra:
        extra["results"] = ["a.json"]
    record = json.loads(path.read_text())
    assert record["exit_code"] == 0 and record["results"] == ["a.json"] and record["command"][1] == "eval"
    assert "error" not in record and record["packages"]
    with pytest.raises(FactoryKitError):
        with records.recording(path, None, tmp_path, ["factory-kit", "eval"], {"kind": "eval"}, history=True):
            raise FactoryKitError("benchmark 'x' not found")
    record = json.loads(path.read_text())
    assert record["exit_code"] == 2 and record["error"] == "benchmark 'x' not found"
    history = [json.loads(line) for line in (path.parent / "runs.jsonl").read_text().splitlines()]
    assert [h["exit_code"] for h in history] == [0, 2]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "a temp file was left behind"


def test_a_failed_child_and_an_interrupt_are_recorded(tmp_path):
    path = tmp_path / "run.json"
    with pytest.raises(LaunchError):
        with records.recording(path, None, tmp_path, ["x"], {"kind": "train"}):
            raise LaunchError("`x` failed (exit 1)")
    assert json.loads(path.read_text())["exit_code"] == 1
    with pytest.raises(KeyboardInterrupt):
        with records.recording(path, None, tmp_path, ["x"], {"kind": "train"}):
            raise KeyboardInterrupt
    assert json.loads(path.read_text())["exit_code"] == 1
    assert not (tmp_path / "runs.jsonl").exists()
