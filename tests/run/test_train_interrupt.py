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


def test_ctrl_c_records_an_interrupted_run_and_resume_finishes_it(tiny_project):
    out = tiny_project / "outputs" / "demo-tiny"
    sets = [*FAST, "train.max_steps=400", "train.save_steps=4"]
    exe = str(Path(sys.executable).parent / "factory-kit")
    proc = subprocess.Popen([exe, "train", "recipes/demo-tiny.yaml", *[a for s in sets for a in ("--set", s)]],
                            cwd=tiny_project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while (checkpoint := _complete_checkpoint(out)) is None:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint saved"
        time.sleep(0.1)
    saved = {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()}
    proc.send_signal(signal.SIGINT)
    screen = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, screen[-3000:]
    assert "Aborted" not in screen and "Traceback" not in screen, screen[-3000:]
    assert "factory-kit train recipes/demo-tiny.yaml --resume" in screen, screen[-3000:]
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
