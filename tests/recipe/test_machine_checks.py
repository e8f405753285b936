"""Failures in recipe terms before any time is spent: what `check` and `train` find about the model path,
this machine's packages, the hub while offline, bf16 without a GPU, and spaces in paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import checks
from factory_kit.recipe.render import render

QWEN2_CONFIG = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64,
                "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "vocab_size": 512}


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(QWEN2_CONFIG))
    return path


def _check(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    return message


@pytest.mark.parametrize("model", [r"C:\models\qwen", "D:/x", r"models\qwen"])
def test_windows_path_fails_check_naming_model_and_fix(registry_project, model):
    message = _one_line_error(_check("recipes/tcm-lora.yaml", "--set", f"model={model}"))
    assert f"`model: {model}` is a Windows path" in message and "set `model:` to its folder" in message
    assert "org/name" in message


@pytest.mark.parametrize("model", ["./models/nope", "../nope", "/no/such/model", "~/no-such-model", "models/a/b"])
def test_missing_local_path_fails_check_instead_of_passing_as_a_hub_id(registry_project, model):
    message = _one_line_error(_check("recipes/tcm-lora.yaml", "--set", f"model={model}", "--set", "template=qwen"))
    assert f"`model: {model}` is not a folder here" in message and "cannot be a Hugging Face id" in message
    assert "hf download ORG/NAME --local-dir models/" in message
    assert "--set" in message  # where the value came from: the recipe key's origin


def test_folder_without_config_is_no_model(registry_project):
    (registry_project / "models" / "empty").mkdir(parents=True)
    message = _one_line_error(_check("recipes/tcm-lora.yaml", "--set", "model=models/empty"))
    assert "`model: models/empty` is a folder without config.json" in message


def test_qlora_without_bitsandbytes_fails_check_with_the_extra(registry_project, monkeypatch):
    real = checks.importable
    monkeypatch.setattr(checks, "importable", lambda req: False if req.startswith("bitsandbytes") else real(req))
    message = _one_line_error(_check("recipes/tcm-qlora.yaml"))
    assert "`method: qlora` needs bitsandbytes (bitsandbytes is not installed)" in message
    assert "pip install 'factory-kit[qlora]'" in message
    assert checks.importable("click") and not checks.importable("no-such-package-xyz")


def test_qlora_extra_is_declared():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parents[2] / "setup.cfg")
    assert "bitsandbytes" in cfg["options.extras_require"]["qlora"]


def test_hub_model_offline_warns_at_check_and_train_refuses_before_launching(registry_project, monkeypatch):
    from factory_kit.run import launch, train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(checks, "precision_problem", lambda ctx, confirm=False: None)
    result = _check("recipes/tcm-lora.yaml")
    assert result.exit_code == 0, result.output
    assert "model Qwen/Qwen2.5-7B-Instruct is not a folder here" in result.stderr
    assert "`hf download Qwen/Qwen2.5-7B-Instruct --local-dir models/NAME`" in result.stderr
    assert "huggingface-cli" not in result.output

    def launched(*args, **kwargs):
        raise AssertionError("launched")

    monkeypatch.setattr(launch, "llamafactory", launched)
    with pytest.raises(FactoryKitError, match=r"not in the local cache while the hub is offline .* "
                                              r"and set `model: models/NAME`"):
        train.train("recipes/tcm-lora.yaml")
    # in the local cache (where `hf download ID` without --local-dir puts it): fine offline
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(registry_project / "hf-cache"))
    _model_folder(registry_project / "hf-cache" / "models--Qwen--Qwen2.5-7B-Instruct" / "snapshots" / "abc")
    assert checks.hub_model_problem("Qwen/Qwen2.5-7B-Instruct", registry_project) is None
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert checks.hub_model_problem("Qwen/Qwen2.5-72B-Instruct", registry_project) is None  # online: may download


@pytest.mark.skipif(any(shutil.which(t) for t in checks.GPU_TOOLS), reason="needs a machine without a GPU")
def test_bf16_on_a_cpu_machine_warns_at_check_and_train_refuses_before_launching(registry_project, monkeypatch):
    """Before: LLaMA-Factory's traceback after its imports, then the hint. Now: the hint, before."""
    from factory_kit.run import launch, train

    monkeypatch.setattr(checks, "hub_model_problem", lambda model, project: None)
    result = _check("recipes/tcm-lora.yaml", "--set", "precision=bf16")
    assert result.exit_code == 0
    assert "`precision: bf16` needs a GPU with bf16 and this machine has none" in result.stderr
    assert "--set precision=fp32" in result.stderr
    assert "bf16" not in _check("recipes/tcm-lora.yaml", "--set", "precision=fp32").stderr

    def launched(*args, **kwargs):
        raise AssertionError("launched")

    monkeypatch.setattr(launch, "llamafactory", launched)
    with pytest.raises(FactoryKitError, match=r"`precision: bf16` needs a GPU .* `precision: fp32`"):
        train.train("recipes/tcm-lora.yaml", ("precision=bf16",))  # asks torch to be sure: no GPU here
    with pytest.raises(FactoryKitError, match="needs a GPU with bf16"):  # raw keys too
        train.train("recipes/tcm-lora.yaml", ("precision=fp32", "llamafactory={bf16: true}"))


def test_spaces_refused_only_where_llamafactory_splits_them(registry_project, monkeypatch, tmp_path):
    """0.9.5 splits only the torchrun command line, which holds build/<recipe>/train.yaml: a project
    folder, model path or recipe folder with a space is fine; a recipe *name* with one is refused for
    torchrun hardware and warned about otherwise."""
    spaced = tmp_path / "my proj"
    shutil.copytree(registry_project, spaced, symlinks=True)
    monkeypatch.chdir(spaced)
    monkeypatch.setenv("FACTORY_KIT_PROJECT", str(spaced))
    _model_folder(spaced / "models" / "my model")
    (spaced / "recipes" / "in folder").mkdir()
    (spaced / "recipes" / "in folder" / "ok.yaml").write_text(
        "extends: ../tcm-lora.yaml\nmodel: models/my model\nprecision: fp32\n")
    result = _check("recipes/in folder/ok.yaml")
    assert result.exit_code == 0, result.output
    assert "space" not in result.output
    out = render("recipes/in folder/ok.yaml")
    assert out.configs["train.yaml"]["model_name_or_path"] == "models/my model"

    (spaced / "recipes" / "my recipe.yaml").write_text("extends: tcm-lora.yaml\nmodel: models/my model\n")
    warned = _check("recipes/my recipe.yaml")
    assert warned.exit_code == 0, warned.output
    assert "recipe name 'my recipe' contains a space" in warned.stderr and "several GPUs" in warned.stderr
    message = _one_line_error(_check("recipes/my recipe.yaml", "--set", "hardware=ds-z3", "--set", "method=full"))
    assert "recipe name 'my recipe' contains a space" in message and "`hardware: ds-z3`" in message
    assert "rename the recipe file (e.g. my-recipe.yaml)" in message
