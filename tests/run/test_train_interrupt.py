"""Ctrl-C during `factory-kit train`, for real: the tiny model training in a child `factory-kit train`,
SIGINT sent to it as a terminal would (our process only: llamafactory-cli runs in its own group)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory_kit.run import train

FAST = ["train.batch_size=4", "train.cutoff_len=64", "train.logging_steps=1", "eval_datasets=[]"]


@pytest.fixture
def tiny_project(registry_project, tiny_model):
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    return registry_project


def _complete_checkpoint(out: Path) -> Path | None:
    return train.last_checkpoint(out) if out.is_dir() else None


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _start(project: Path, sets: list[str]) -> subprocess.Popen:
    exe = str(Path(sys.executable).parent / "factory-kit")
    return subprocess.Popen([exe, "train", "recipes/demo-tiny.yaml", *[a for s in sets for a in ("--set", s)]],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_ctrl_c_records_an_interrupted_run_and_resume_finishes_it(tiny_project):
    """Over a finished run (the recipe says `overwrite: true`): Ctrl-C before the new run saved
    anything puts the finished run back byte for byte; Ctrl-C after a checkpoint keeps the new run
    resumable and the finished one set aside, intact, until the new one completes."""
    out = tiny_project / "outputs" / "demo-tiny"
    train.train("recipes/demo-tiny.yaml", (*FAST, "train.max_steps=2"), echo=False)
    finished = _files(out)
    sets = [*FAST, "train.max_steps=400", "train.save_steps=4"]

    proc = _start(tiny_project, sets)  # 1. stopped while LLaMA-Factory starts up: nothing changes
    deadline = time.monotonic() + 120
    while not (train.previous_dir(out).exists() and (out / "factory-kit.log").exists()):  # set aside, launched
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    screen = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130 and "is back as it was before this run" in screen, screen[-3000:]
    assert _files(out) == finished and not train.previous_dir(out).exists()

    proc = _start(tiny_project, sets)  # 2. stopped after a checkpoint: resumable, the finished run kept
    deadline = time.monotonic() + 240
    while not train.previous_dir(out).exists() or (checkpoint := _complete_checkpoint(out)) is None:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint saved"
        time.sleep(0.1)
    saved = {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()}
    proc.send_signal(signal.SIGINT)
    screen = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, screen[-3000:]
    assert "Aborted" not in screen and "Traceback" not in screen, screen[-3000:]
    assert "factory-kit train recipes/demo-tiny.yaml --resume" in screen, screen[-3000:]
    assert _files(train.previous_dir(out)) == finished, "the run being replaced must stay intact"
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["exit_code"] == 130, record
    assert record["error"] == "interrupted (Ctrl-C)"
    # what was saved before the interrupt is intact (a checkpoint cut off mid-save is passed over)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()} == saved
    last = train.last_checkpoint(out)
    assert "adapter_model.safetensors" in {p.name for p in last.iterdir()}
    step = int(last.name.split("-")[1])

    # the recipe says `overwrite: true`; --resume still continues (it never wipes the checkpoints)
    resumed = train.train("recipes/demo-tiny.yaml", (*sets, f"train.max_steps={step + 2}"), resume=True, echo=False)
    assert f"resume_from_checkpoint: {last.relative_to(tiny_project)}" in \
        (out / "rendered" / "train.yaml").read_text()
    assert resumed.losses[-1][0] == step + 2
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    assert not train.previous_dir(out).exists(), "a completed run drops the one it replaced"


@pytest.mark.parametrize("stop,code,words", [(KeyboardInterrupt, 130, "interrupted: "),
                                             (lambda: SystemExit(143), 143, "stopped by signal 15: ")])
def test_interrupt_before_any_checkpoint_says_to_start_again(registry_project, monkeypatch, stop, code, words):
    """No tiny model needed: the launch is replaced by what Ctrl-C (KeyboardInterrupt) or SIGTERM
    (launch's handler: SystemExit(128 + 15)) raise out of it."""
    from click.testing import CliRunner

    from factory_kit.cli import main
    from factory_kit.run import launch

    model = registry_project / "models" / "tiny-qwen2"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))

    def interrupted(*args, **kwargs):
        raise stop()

    monkeypatch.setattr(launch, "llamafactory", interrupted)
    result = CliRunner().invoke(main, ["train", "recipes/demo-tiny.yaml", "--set", "precision=fp32"])
    assert result.exit_code == code, result.output
    assert words + "no checkpoint was saved yet in outputs/demo-tiny" in result.output
    assert "`factory-kit train recipes/demo-tiny.yaml --overwrite`" in result.output and "Aborted" not in result.output
    record = json.loads((registry_project / "outputs" / "demo-tiny" / "run.json").read_text())
    assert record["status"] == "interrupted" and record["exit_code"] == code
    # --resume with nothing to resume from: one line, not a silent fresh start over the recipe's overwrite: true
    refused = CliRunner().invoke(main, ["train", "recipes/demo-tiny.yaml", "--resume"])
    assert refused.exit_code == 2 and "--resume given but there is no checkpoint to resume from" in refused.output
