"""Launching on many processes and nodes: the command for every node, DeepSpeed always under torchrun,
and two ranks for real on the CPU through `factory-kit train` (hardware: ddp, gloo)."""

from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.paths import CATALOG_DIR
from factory_kit.recipe import catalog
from factory_kit.recipe.catalog import profiles
from factory_kit.recipe.render import render

@pytest.fixture
def tiny_project_scale(registry_project, tiny_model):
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    return registry_project


MULTI = ["hardware=multi-node", "nodes.count=3", "nodes.gpus_per_node=8", "nodes.master_addr=10.0.0.7",
         "nodes.master_port=29411"]


def _node_commands(*args: str) -> list[str]:
    result = CliRunner().invoke(main, ["train", "recipes/tcm-lora.yaml", *args, "--print-node-commands"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()


def test_print_node_commands_for_every_node(registry_project):
    """One line per node: the launch environment with this node's rank, then the same factory-kit call
    with --node-rank; nothing launches (no output folder appears)."""
    lines = _node_commands(*(a for s in MULTI for a in ("--set", s)), "--overwrite")
    assert len(lines) == 3
    for rank, line in enumerate(lines):
        words = shlex.split(line)
        env = dict(w.split("=", 1) for w in words[:6])
        assert env == {"FORCE_TORCHRUN": "1", "NNODES": "3", "NPROC_PER_NODE": "8", "MASTER_ADDR": "10.0.0.7",
                       "MASTER_PORT": "29411", "NODE_RANK": str(rank)}
        assert words[6:] == ["factory-kit", "train", "recipes/tcm-lora.yaml",
                             *(a for s in MULTI for a in ("--set", s)), "--overwrite", "--node-rank", str(rank)]
    assert not (registry_project / "outputs").exists()


def test_print_node_commands_one_node(registry_project):
    """Single-node hardware: one line; a DeepSpeed profile shows its torchrun environment."""
    assert _node_commands() == ["factory-kit train recipes/tcm-lora.yaml"]
    assert _node_commands("--set", "hardware=ds-z3", "--set", "nodes.gpus_per_node=4") == [
        "FORCE_TORCHRUN=1 NPROC_PER_NODE=4 factory-kit train recipes/tcm-lora.yaml --set hardware=ds-z3 "
        "--set nodes.gpus_per_node=4"]


def test_print_node_commands_refuses_what_check_refuses(registry_project):
    result = CliRunner().invoke(main, ["train", "recipes/tcm-lora.yaml", "--set", "hardware=multi-node",
                                       "--set", "nodes.count=2", "--print-node-commands"])
    assert result.exit_code != 0 and "needs `nodes.master_addr`" in result.output


def test_every_deepspeed_profile_forces_torchrun(registry_project, tmp_path, monkeypatch):
    """LLaMA-Factory starts DeepSpeed only under torchrun: every ds-* row renders FORCE_TORCHRUN=1, and so
    does a new DeepSpeed row that forgets it (or sets it to 0)."""
    for name, row in catalog.hardware().items():
        if row.deepspeed:
            out = render("recipes/tcm-lora.yaml", [f"hardware={name}"], write=False)
            assert out.env["FORCE_TORCHRUN"] == "1", name
    folder = tmp_path / "catalog"
    folder.mkdir()
    text = (CATALOG_DIR / "profiles.yaml").read_text(encoding="utf-8")
    assert text.rstrip().splitlines()[-1].startswith("    ")  # hardware is the last section
    (folder / "profiles.yaml").write_text(text.rstrip("\n") + "\n  ds-bare:\n    description: x\n    template: "
                                          "deepspeed\n    distributed: true\n    deepspeed: {stage: 2}\n"
                                          "  ds-off:\n    description: y\n    template: deepspeed\n    distributed: "
                                          "true\n    deepspeed: {stage: 2}\n    env: {FORCE_TORCHRUN: '0'}\n",
                                          encoding="utf-8")
    (folder / "models.yaml").write_text((CATALOG_DIR / "models.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv(profiles.CATALOG_ENV, str(folder))
    for name in ("ds-bare", "ds-off"):
        out = render("recipes/tcm-lora.yaml", [f"hardware={name}", "nodes.gpus_per_node=2"], write=False)
        assert out.env == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}, name


def test_ddp_renders_torchrun_on_one_node(registry_project):
    out = render("recipes/tcm-lora.yaml", ["hardware=ddp", "nodes.gpus_per_node=4", "nodes.backend=gloo"],
                 write=False)
    assert out.env == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "4"}
    assert out.configs["train.yaml"]["ddp_backend"] == "gloo" and "deepspeed" not in out.configs["train.yaml"]
    result = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", "--set", "hardware=ddp",
                                       "--set", "nodes.count=2"])
    assert result.exit_code != 0 and "needs `hardware: multi-node`" in result.output


def test_two_ranks_on_the_cpu_through_factory_kit_train(tiny_project_scale):
    """The real multi-process run: `factory-kit train` with hardware ddp, 2 processes, gloo, on the CPU."""
    sets = ["train.epochs=1", "train.batch_size=4", "train.cutoff_len=64", "train.logging_steps=1",
            "eval_datasets=[]", "hardware=ddp", "nodes.gpus_per_node=2", "nodes.backend=gloo"]
    result = CliRunner().invoke(main, ["train", "recipes/demo-tiny.yaml", *(a for s in sets for a in ("--set", s))])
    assert result.exit_code == 0, result.output[-3000:]
    assert "trained" in result.output
    out = tiny_project_scale / "outputs" / "demo-tiny"
    log = (out / "factory-kit.log").read_text(encoding="utf-8")
    assert "world size: 2" in log and "rank: 1" in log, log[-3000:]
    assert (out / "adapter_model.safetensors").exists()
    assert "NPROC_PER_NODE=2" in (tiny_project_scale / "build" / "demo-tiny" / "launch.env").read_text()
