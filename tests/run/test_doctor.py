"""`factory-kit doctor`: this machine, its packages, and which shipped recipes can run here."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.run import doctor


@pytest.fixture
def doctor_project(registry_project, tiny_model, monkeypatch):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the hub may be reachable: reasons below are others
        monkeypatch.delenv(var, raising=False)
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    return registry_project


def _rows(output: str) -> dict[str, str]:
    """First word of each table row -> the rest of the row (wrapped notes are joined)."""
    rows, last = {}, None
    for line in output.splitlines():
        if line.startswith(" ") and last:
            rows[last] += " " + line.strip()
        elif line.strip():
            last, _, rest = line.partition(" ")
            rows[last] = rest.strip()
    return rows


def test_doctor_on_this_cpu_machine(doctor_project, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi, whatever the host has
    result = CliRunner().invoke(main, ["doctor"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    rows = _rows(result.output)
    assert rows["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert rows["torch"].split()[0][0].isdigit()  # its version (installed in the test environment)
    assert rows["gpu"].startswith("none") and "nvidia-smi" in rows["gpu"]
    for package in ("llamafactory", "transformers", "peft", "deepspeed", "flash-attn", "liger-kernel",
                    "bitsandbytes", "vllm", "ray", "llama-cpp-python"):
        assert package in rows, package
    assert rows["llamafactory"].startswith("0.9")
    assert rows["demo-tiny"].startswith("yes") and "on the CPU" in rows["demo-tiny"]
    assert rows["tcm-qlora"].startswith("no") and "bitsandbytes" in rows["tcm-qlora"]
    assert rows["tcm-lora"].startswith("no") and "bf16" in rows["tcm-lora"]
    assert "base" not in rows  # base.yaml is only extended, never trained


def test_doctor_with_a_24gb_gpu_says_what_does_not_fit_and_the_fix(doctor_project, tmp_path, monkeypatch):
    """A fake nvidia-smi reporting an RTX 4090: the 7B LoRA recipe at 2 x 2048 does not fit (the planner's
    fix is named), the 8-GPU ZeRO-3 recipe needs more GPUs, the tiny one runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA GeForce RTX 4090, 24564, 550.54'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    here = doctor.machine()
    assert [(g.name, round(g.memory_gb)) for g in here.gpus] == [("NVIDIA GeForce RTX 4090", 24)]
    verdicts = {v.recipe: v for v in doctor.recipe_verdicts(here)}
    assert verdicts["demo-tiny"].runs
    assert not verdicts["tcm-lora"].runs and "RTX 4090" in verdicts["tcm-lora"].why
    assert "`train.batch_size: 1`" in verdicts["tcm-lora"].why
    assert not verdicts["tcm-full-z3"].runs and "needs 8 GPUs" in verdicts["tcm-full-z3"].why
    assert verdicts["tcm-qlora"].runs is False  # bitsandbytes is not installed here


def test_doctor_is_fast_and_imports_neither_torch_nor_llamafactory(doctor_project):
    code = ("import sys, time; t = time.time()\n"
            "from click.testing import CliRunner\nfrom factory_kit.cli.main import main\n"
            "r = CliRunner().invoke(main, ['doctor'])\nassert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules, 'llamafactory' in sys.modules, round(time.time() - t, 2))")
    started = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=doctor_project,
                          env={**os.environ, "PATH": "/usr/bin:/bin"}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    torch_loaded, lf_loaded, seconds = done.stdout.split()
    assert (torch_loaded, lf_loaded) == ("False", "False")
    assert float(seconds) < 6 and time.time() - started < 15  # ~1.5 s on an idle machine; 2 shared cores here
