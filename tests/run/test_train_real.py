"""Rendered configs train for real: llamafactory-cli on the tiny model, sft / pt / dpo / kto / rm, ppo as far
as LLaMA-Factory 0.9.5 lets it, and failures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from factory_kit.run import model, train
from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError, LaunchError

FAST = ["train.epochs=2", "train.batch_size=4", "train.cutoff_len=64", "train.logging_steps=1",
        "train.eval_steps=2"]


@pytest.fixture
def tiny_project(registry_project, tiny_model):
    (registry_project / "models").mkdir()
    (registry_project / "models" / "tiny-qwen2").symlink_to(tiny_model)
    return registry_project


@pytest.mark.parametrize("stage,data", [("sft", "tcm_qa_train"), ("pt", "tcm_herbs"), ("dpo", "tcm_pref"),
                                        ("kto", "tcm_kto"), ("rm", "tcm_pref")])
def test_rendered_config_trains(tiny_project, stage, data):
    sets = [*FAST, f"stage={stage}", f"datasets=[{data}]"]
    if stage != "sft":
        sets.append("eval_datasets=[]")
    result = train.train("recipes/demo-tiny.yaml", tuple(sets))
    assert result.losses, "no loss logged"
    assert (result.output_dir / "adapter_model.safetensors").exists()
    if stage == "rm":  # LLaMA-Factory's reward model: the adapter plus its scoring head
        assert (result.output_dir / "value_head.safetensors").exists()
    if stage == "sft":
        assert result.eval_losses, "eval loss not logged"
        assert result.losses[-1][1] < result.losses[0][1], result.losses
    kept = result.output_dir / "rendered"  # what this run used, whatever later renders write to build/
    assert (kept / "train.yaml").read_text() == result.rendered.files["train.yaml"].read_text()
    assert f"stage: {stage}  # from --set" in (kept / "recipe.yaml").read_text()
    record = json.loads(result.run_json.read_text())
    assert record["exit_code"] == 0 and record["datasets"] and record["packages"]["llamafactory"] == "0.9.5"


def test_failed_child_fails_loudly(tiny_project):
    """A config LLaMA-Factory rejects at run time: non-zero exit, the command and its last error line."""
    with pytest.raises(LaunchError) as err:
        train.train("recipes/demo-tiny.yaml", (*FAST, "llamafactory={lora_target: no_such_proj}"))
    message = str(err.value)
    assert "llamafactory-cli train build/demo-tiny/train.yaml" in message
    assert "failed (exit 1)" in message
    assert "no_such_proj" in message
    record = json.loads((tiny_project / "outputs" / "demo-tiny" / "run.json").read_text())
    assert record["exit_code"] == 1


@pytest.mark.skipif(bool(__import__("shutil").which("nvidia-smi")), reason="needs a machine without a GPU")
def test_bf16_recipe_on_a_cpu_machine_says_how_to_run_it(tiny_project):
    """The shipped recipes default to bf16; on a CPU train says which recipe key to change before it
    launches (no LLaMA-Factory traceback, no log); the launch-time hint stays for what gets past."""
    with pytest.raises(FactoryKitError) as err:
        train.train("recipes/demo-tiny.yaml", (*FAST, "precision=bf16"))
    assert not isinstance(err.value, LaunchError)
    assert "`precision: bf16` needs a GPU with bf16 and this machine has none" in str(err.value)
    assert "--set precision=fp32" in str(err.value)
    assert not (tiny_project / "outputs" / "demo-tiny" / "factory-kit.log").exists()


def test_cli_train_exit_code_and_output_dir_policy(tiny_project):
    runner = CliRunner()
    bad = runner.invoke(main, ["train", "recipes/demo-tiny.yaml", "--set", "llamafactory={lora_target: nope}"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("error: `")
    # the child's traceback is in the run's log, not on the screen: one line for it, and the error names the log
    assert "Traceback" not in bad.output and 'File "' not in bad.output, bad.output
    assert "[traceback hidden: ValueError: " in bad.output
    assert bad.output.strip().endswith("full log: outputs/demo-tiny/factory-kit.log")
    assert "Traceback (most recent call last):" in (tiny_project / "outputs" / "demo-tiny" / "factory-kit.log").read_text()
    sets = ["--set", "overwrite=false", *[a for s in FAST for a in ("--set", s)]]
    first = runner.invoke(main, ["train", "recipes/demo-tiny.yaml", *sets])  # a failed start's logs don't block
    assert first.exit_code == 0, first.output
    refused = runner.invoke(main, ["train", "recipes/demo-tiny.yaml", *sets])  # its weights do
    assert refused.exit_code == 2 and "already holds a run" in refused.output
    out = tiny_project / "outputs" / "demo-tiny"
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints, "the run saved no checkpoint"
    resumed = train.train("recipes/demo-tiny.yaml", ("overwrite=false", *FAST), resume=True)
    assert f"resume_from_checkpoint: {train.last_checkpoint(out).relative_to(tiny_project)}" in \
        (resumed.output_dir / "rendered" / "train.yaml").read_text()
    import shutil
    for checkpoint in out.glob("checkpoint-*"):  # weights but no checkpoint: nothing to resume from
        shutil.rmtree(checkpoint)
    with pytest.raises(FactoryKitError, match="no checkpoint"):
        train.train("recipes/demo-tiny.yaml", ("overwrite=false", *FAST), resume=True)


def test_multi_node_torchrun_two_nodes_on_loopback(tiny_project, tmp_path, tiny_model):
    """hardware: multi-node for real: two `factory-kit train --node-rank` processes rendezvous on 127.0.0.1."""
    import shutil
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node1 = tmp_path / "node1"
    shutil.copytree(tiny_project, node1, symlinks=True)
    sets = [*FAST, "train.epochs=1", "eval_datasets=[]", "hardware=multi-node", "nodes.count=2",
            "nodes.master_addr=127.0.0.1", "nodes.backend=gloo", f"nodes.master_port={port}"]
    args = [a for s in sets for a in ("--set", s)]
    exe = str(Path(sys.executable).parent / "factory-kit")
    procs = [subprocess.Popen([exe, "train", "recipes/demo-tiny.yaml", *args, "--node-rank", str(rank)], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**__import__("os").environ, "FACTORY_KIT_PROJECT": str(cwd)})
             for rank, cwd in ((0, tiny_project), (1, node1))]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "trained" in outputs[0] and "node 1 finished" in outputs[1]
    assert "NNODES=2" in (tiny_project / "build" / "demo-tiny" / "launch.env").read_text()
    assert (tiny_project / "outputs" / "demo-tiny" / "adapter_model.safetensors").exists()


def test_chat_and_serve_a_trained_model(tiny_project):
    """`factory-kit chat` talks through our stdin (the launcher passes it on), and `factory-kit serve`
    puts the trained adapter behind a real OpenAI-compatible API."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import openai

    train.train("recipes/demo-tiny.yaml", (*FAST, "train.epochs=1", "eval_datasets=[]"), echo=False)
    exe = str(Path(sys.executable).parent / "factory-kit")
    chat = subprocess.run([exe, "chat", "recipes/demo-tiny.yaml"], cwd=tiny_project, input="黄芪的功效？\nexit\n",
                          capture_output=True, text=True, timeout=300)
    assert chat.returncode == 0, chat.stdout[-2000:] + chat.stderr[-2000:]
    assert "User: " in chat.stdout and "Assistant:" in chat.stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "serve", "recipes/demo-tiny.yaml", "--port", str(port)], cwd=tiny_project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None, proc.stdout.read()[-2000:]
                assert time.monotonic() < deadline, "server never came up"
                time.sleep(0.5)
        reply = client.chat.completions.create(model="tiny", max_tokens=8,
                                               messages=[{"role": "user", "content": "黄芪的功效？"}])
        assert reply.choices[0].message.content
        assert reply.usage.completion_tokens > 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_chat_and_serve_check_the_model_exists_first(tiny_project):
    with pytest.raises(FactoryKitError, match=r"no trained model \(adapter_config.json\) yet; run `factory-kit train"):
        model.ask("recipes/demo-tiny.yaml", "hi")
    with pytest.raises(FactoryKitError, match="no merged model yet; run `factory-kit export"):
        model.serve("recipes/demo-tiny.yaml", merged=True)
    result = CliRunner().invoke(main, ["chat", "recipes/demo-tiny.yaml"])
    assert result.exit_code == 2 and "no trained model" in result.output


def test_ppo_against_a_reward_model_trained_here(tiny_project):
    """`stage: rm` trains a reward model for real; a `stage: ppo` recipe names that recipe and renders
    against its output. LLaMA-Factory 0.9.5's PPO needs trl 0.8.6-0.9.6 while its other trainers need a
    newer trl (catalog/profiles.yaml): with such a trl `factory-kit train` refuses before launching, and
    llamafactory-cli on the rendered config gets as far as PPO can here (prompts tokenised, the policy
    with its value head built, the reward adapter loaded), failing only at the PPO trainer's trl check."""
    from factory_kit.recipe import catalog, checks, reward
    from factory_kit.recipe.render import render
    from factory_kit.run import launch

    recipes = tiny_project / "recipes"
    (recipes / "tiny-rm.yaml").write_text("extends: demo-tiny.yaml\nstage: rm\ndatasets: [tcm_pref]\n"
                                          "eval_datasets: []\n")
    (recipes / "tiny-ppo.yaml").write_text("extends: demo-tiny.yaml\nstage: ppo\nreward_model: tiny-rm.yaml\n"
                                           "datasets: [tcm_qa_train]\neval_datasets: []\ntrain: {max_steps: 2}\n"
                                           "llamafactory: {max_new_tokens: 8}\n")
    ppo = render("recipes/tiny-ppo.yaml", tuple(FAST))
    assert ppo.configs["train.yaml"]["reward_model"] == "outputs/tiny-rm"
    assert ppo.configs["train.yaml"]["reward_model_type"] == "lora"
    rm = reward.RewardModel("outputs/tiny-rm", "lora", "recipes/tiny-rm.yaml")
    assert "train it first: `factory-kit train recipes/tiny-rm.yaml`" in reward.missing(rm, tiny_project)

    trained = train.train("recipes/tiny-rm.yaml", tuple(FAST))
    assert trained.losses, "the reward model logged no loss"
    assert (trained.output_dir / "value_head.safetensors").exists()
    assert (trained.output_dir / "adapter_model.safetensors").exists()
    assert reward.missing(rm, tiny_project) is None

    trl = next(iter(catalog.stages()["ppo"].packages))
    if checks.package_problem(trl) is None:  # a trl this PPO accepts: train for real
        result = train.train("recipes/tiny-ppo.yaml", tuple(FAST))
        assert result.losses and (result.output_dir / "adapter_model.safetensors").exists()
        return
    with pytest.raises(FactoryKitError) as refused:
        train.train("recipes/tiny-ppo.yaml", tuple(FAST))
    assert "`stage: ppo` needs trl>=0.8.6,<=0.9.6 (trl " in str(refused.value)
    assert "stage: dpo" in str(refused.value)
    log = tiny_project / "ppo.log"
    with pytest.raises(LaunchError):
        launch.llamafactory("train", ppo.files["train.yaml"].relative_to(tiny_project), cwd=tiny_project,
                            log_path=log, echo=False)
    text = log.read_text(encoding="utf-8")
    assert "Running tokenizer on dataset" in text and "training example:" in text
    assert "Loaded adapter weights of reward model from outputs/tiny-rm" in text
    assert "trl>=0.8.6,<=0.9.6 is required" in text


def test_trains_from_a_folder_and_model_path_with_spaces(tiny_project, tmp_path, monkeypatch):
    """LLaMA-Factory 0.9.5 splits only the torchrun command line: a one-process run from `my proj` with
    `model: models/my model` trains (check used to refuse both)."""
    import shutil

    spaced = tmp_path / "my proj"
    shutil.copytree(tiny_project, spaced, symlinks=True)
    (spaced / "models" / "my model").symlink_to((tiny_project / "models" / "tiny-qwen2").resolve())
    monkeypatch.chdir(spaced)
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(spaced))
    result = train.train("recipes/demo-tiny.yaml", (*FAST, "train.epochs=1", "eval_datasets=[]", "model=models/my model"),
                         echo=False)
    assert result.losses and (spaced / "outputs" / "demo-tiny" / "adapter_model.safetensors").exists()
