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
    failed = json.loads(path.read_text())
    assert failed["exit_code"] == 1 and failed["status"] == "failed" and records.status_of(failed) == "failed"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C: interrupted, exit 130 (not a failure with no error)
        with records.recording(path, None, tmp_path, ["x"], {"kind": "train"}):
            raise KeyboardInterrupt
    record = json.loads(path.read_text())
    assert record["exit_code"] == 130 and record["status"] == "interrupted"
    assert record["error"] == "interrupted (Ctrl-C)"
    with pytest.raises(SystemExit):  # SIGTERM, as launch's handler turns it into an exit: 128 + 15
        with records.recording(path, None, tmp_path, ["x"], {"kind": "train"}):
            raise SystemExit(143)
    record = json.loads(path.read_text())
    assert record["exit_code"] == 143 and record["status"] == "interrupted" and record["error"] == "stopped by signal 15"
    assert records.status_of({"exit_code": 0}) == "succeeded"  # records written before `status` existed
    assert not (tmp_path / "runs.jsonl").exists()


def test_weights_identity_tells_an_adapter_from_the_next_one(tmp_path):
    """Which adapter a result or a merged model came from: same file untouched -> same (no hashing);
    a copy (new time, same bytes) -> same by hash; new weights (train --resume) -> different."""
    import os
    import shutil

    adapter = tmp_path / "out"
    adapter.mkdir()
    assert records.weights_identity(adapter) is None and records.same_weights(None, adapter) is None
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    first = records.weights_identity(adapter)
    assert first["file"] == "adapter_model.safetensors" and first["size"] == 10 and len(first["sha256"]) == 64
    assert records.same_weights(first, adapter) is True
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    os.utime(copy / "adapter_model.safetensors", ns=(1, 1))
    assert records.same_weights(first, copy) is True
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")
    assert records.same_weights(first, adapter) is False


def test_merged_marker_makes_a_merge_of_an_older_adapter_stale(tmp_path):
    import os

    trained, merged = tmp_path / "out", tmp_path / "out" / "merged"
    merged.mkdir(parents=True)
    (trained / "adapter_model.safetensors").write_bytes(b"weights v1")
    (merged / "config.json").write_text("{}")
    records.write_merged_marker(merged, trained)
    assert records.merged_from(merged)["sha256"] == records.weights_identity(trained)["sha256"]
    assert records.merged_is_stale(merged, trained) is False
    (trained / "adapter_model.safetensors").write_bytes(b"weights v2")  # train --resume wrote a new adapter
    assert records.merged_is_stale(merged, trained) is True
    # merged before factory-kit wrote markers: judged by time
    (merged / records.MERGED_MARKER).unlink()
    os.utime(merged / "config.json", ns=(1, 1))
    assert records.merged_is_stale(merged, trained) is True
    (merged / "config.json").write_text("{}")
    assert records.merged_is_stale(merged, trained) is False
