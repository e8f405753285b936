"""Recipe loading: extends, overrides, schema errors, and the bad-recipe corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.recipe import load as recipe_mod
from factory_kit.cli import main
from factory_kit.recipe import checks
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.render import render

BAD = Path(__file__).parent / "bad_recipes"

# file -> fragments the one-line message must contain
BAD_CASES = {
    "typo_key.yaml": ["typo_key.yaml", "unknown key `trian`", "did you mean `train`"],
    "typo_nested.yaml": ["typo_nested.yaml", "`train.lerning_rate`", "did you mean `train.learning_rate`"],
    "wrong_type.yaml": ["wrong_type.yaml", "`train.learning_rate` must be an integer or a number", "'1e-4'", "unquoted"],
    "wrong_choice.yaml": ["`method: lroa` is not one of", "did you mean `lora`"],
    "unknown_model.yaml": ["TotallyUnknownModel", "models.yaml"],
    "unknown_dataset.yaml": ["`tcm_qa_trian` is not in", "did you mean `tcm_qa_train`"],
    "missing_parent.yaml": ["missing_parent.yaml", "`extends: no-such-parent.yaml` not found"],
    "cycle_a.yaml": ["makes a cycle", "cycle_a.yaml -> ", "cycle_b.yaml"],
    "quant_full.yaml": ["`quant`", "method: full", "qlora"],
    "predict_z3.yaml": ["do_predict", "ZeRO-3"],
    "val_and_eval.yaml": ["either `val_size`", "`eval_datasets`"],
    "sharegpt_pt.yaml": ["`tcm_consultations` is sharegpt", "`stage: pt` needs plain text"],
    "dpo_plain.yaml": ["`tcm_qa_train` is not a preference dataset", "stage: dpo"],
    "baichuan.yaml": ["Baichuan", "template"],
    "bad_raw_key.yaml": ["bad_raw_key.yaml", "`enable_liger_kernal` is not a LLaMA-Factory train argument",
                         "did you mean `enable_liger_kernel`"],
    "bad_raw_type.yaml": ["`lora_rank`: expected int", "'sixteen'"],
    "invalid_yaml.yaml": ["invalid_yaml.yaml:", "invalid YAML"],
    "missing_model.yaml": ["`model` is required"],
    "multinode_one.yaml": ["multi-node", "nodes.count"],
    "mix_probs.yaml": ["`mix.probs` has 1 values for 2 datasets"],
    "thinking_none.yaml": ["thinking: true", "no thinking mode"],
    "negative_rank.yaml": ["negative_rank.yaml", "`lora.rank: -8` must be greater than 0"],
    "zero_epochs.yaml": ["`train.epochs: 0` must be greater than 0"],
    "raw_predict_z3.yaml": ["raw_predict_z3.yaml", "`llamafactory.do_predict` replaces a recipe setting",
                            "set `predict.enabled`"],
    "export_gguf.yaml": ["export_gguf.yaml", "`export.gguf: q4_km` is not a GGUF type", "did you mean `q4_k_m`?"],
    "export_merge.yaml": ["export_merge.yaml", "`export.gguf` converts merged weights", "`export.merge: true`"],
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_recipe_gets_one_clear_line(registry_project, name):
    """Through the real CLI: exit non-zero, one line on stderr, no traceback."""
    shutil.copytree(BAD, registry_project / "bad", dirs_exist_ok=True)
    result = CliRunner().invoke(main, ["check", f"bad/{name}"])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, message
    for fragment in BAD_CASES[name]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("sets,fragments", [
    (["predict.enabled=true", "val_size=0.1"], ["recipes/tcm-dpo.yaml", "`predict.enabled`", "only with `stage: sft`"]),
    (["train.learning_rate=.nan"], ["--set", "`train.learning_rate: nan` must be a finite number"]),
    (["nodes.master_port=99999"], ["`nodes.master_port: 99999` is not a TCP port"]),
    (["hardware=multi-node", "nodes={count: 2}"], ["needs `nodes.master_addr`"]),
    (["hardware=ds-z3", "nodes={count: 2, master_addr: 10.0.0.2}"], ["`nodes.count: 2` needs `hardware: multi-node`"]),
    (["llamafactory={template: qwen3}"], ["`llamafactory.template` replaces a recipe setting", "set `template`"]),
    (["llamafactory={output_dir: elsewhere}"], ["`llamafactory.output_dir` replaces a recipe setting"]),
    (["template=qwen9"], ["`template: qwen9` is not a LLaMA-Factory template", "did you mean `qwen`"]),
    (["extends=../x.yaml"], ["`extends` belongs in the recipe file"]),
    (["method=freeze", "freeze.trainable_layers=0"], ["`freeze.trainable_layers: 0` trains nothing"]),
])
def test_more_bad_settings_get_one_clear_line(registry_project, sets, fragments):
    recipe = "recipes/tcm-dpo.yaml" if "predict.enabled=true" in sets else "recipes/tcm-lora.yaml"
    result = CliRunner().invoke(main, ["check", recipe, *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_thinking_off_is_refused_for_reasoning_models_and_think_data(registry_project):
    result = CliRunner().invoke(main, ["check", "recipes/medical-o1-cot.yaml", "--set", "thinking=false"])
    assert result.exit_code == 2 and "models always think" in result.output
    # Qwen3 defaults to thinking off; CoT data imported with <think> tags would lose its reasoning
    meta = registry_project / "data" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "medical_o1_cot.json").write_text('{"name": "medical_o1_cot", "format": "cot", "options": {}, '
                                              '"registered": ["medical_o1_cot"]}', encoding="utf-8")
    sets = ["model=Qwen/Qwen3-8B", "datasets=[medical_o1_cot]"]
    result = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 2 and "hold chain-of-thought in <think> tags, but thinking is off" in result.output
    ok = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", *[a for s in sets for a in ("--set", s)],
                                   "--set", "thinking=true"])
    assert ok.exit_code == 0, ok.output


def test_packing_is_written_whenever_set(registry_project):
    from factory_kit.recipe.render import render

    assert render("recipes/tcm-lora.yaml", ["train.packing=true"], write=False).configs["train.yaml"]["packing"] is True
    assert render("recipes/tcm-pt.yaml", ["train.packing=false"], write=False).configs["train.yaml"]["packing"] is False
    assert "packing" not in render("recipes/tcm-lora.yaml", [], write=False).configs["train.yaml"]


def test_error_text_is_printed_verbatim_not_as_markup(registry_project):
    result = CliRunner().invoke(main, ["check", "recipes/tcm-lora.yaml", "--set", "train.epochs=[1]"])
    assert result.exit_code == 2
    assert "`train.epochs` must be an integer or a number, got [1]" in result.output


def test_extends_merges_maps_and_replaces_lists(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "model: Qwen/Qwen2.5-7B-Instruct\ndatasets: [a, b]\ntrain: {epochs: 3, learning_rate: 1e-4}\n")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\ndatasets: [c]\ntrain: {epochs: 1}\n")
    r = recipe_mod.load(tmp_path / "child.yaml")
    assert r.data["datasets"] == ["c"]
    assert r.data["train"]["epochs"] == 1
    assert r.data["train"]["learning_rate"] == pytest.approx(1e-4)  # YAML 1.2: a float, not "1e-4"
    assert isinstance(r.data["train"]["learning_rate"], float)
    assert r.origins["train.epochs"].endswith("child.yaml")
    assert r.origins["train.learning_rate"].endswith("parent.yaml")
    assert r.origins["train.batch_size"] == "default"


def test_set_overrides_are_typed(tmp_path):
    (tmp_path / "r.yaml").write_text("model: Qwen/Qwen2.5-7B-Instruct\ndatasets: [a]\n")
    r = recipe_mod.load(tmp_path / "r.yaml", ["train.learning_rate=5e-5", "train.gradient_checkpointing=false",
                                              "lora.rank=64", "datasets=[x, y]"])
    assert r.data["train"]["learning_rate"] == pytest.approx(5e-5)
    assert r.data["train"]["gradient_checkpointing"] is False
    assert r.data["lora"]["rank"] == 64
    assert r.data["datasets"] == ["x", "y"]
    assert r.origins["lora.rank"] == "--set"
    with pytest.raises(FactoryKitError, match="did you mean `lora.rank`"):
        recipe_mod.load(tmp_path / "r.yaml", ["lora.rnak=8"])
    with pytest.raises(FactoryKitError, match="expected KEY=VALUE"):
        recipe_mod.load(tmp_path / "r.yaml", ["lora.rank"])


def test_show_annotates_origins(registry_project):
    result = CliRunner().invoke(main, ["show", "recipes/demo-tiny.yaml", "--set", "train.epochs=7"])
    assert result.exit_code == 0, result.output
    assert "epochs: 7  # from --set" in result.output
    assert "model: models/tiny-qwen2  # from recipes/demo-tiny.yaml" in result.output
    assert "rank: 8  # from recipes/demo-tiny.yaml" in result.output
    assert "scheduler: cosine  # from recipes/base.yaml" in result.output
    assert "eval_datasets:" in result.output and "# from recipes/tcm-lora.yaml" in result.output


def test_ls_and_new(registry_project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps long family names in narrow tables
    runner = CliRunner()
    out = runner.invoke(main, ["ls"], terminal_width=200)
    assert out.exit_code == 0, out.output
    for word in ("qwen2.5", "deepseek-r1-distill-qwen", "qlora", "ds-z3-offload", "tcm-lora", "kto"):
        assert word in out.output
    (registry_project / "recipes" / "list.yaml").write_text("- a\n")
    (registry_project / "recipes" / "broken.yaml").write_text("a: [1\n")
    out = runner.invoke(main, ["ls", "recipes"])
    assert out.exit_code == 0, out.output
    assert "broken: a recipe is a mapping" in out.output and "broken: not valid YAML" in out.output
    assert "(shared defaults for `extends`)" in out.output
    made = runner.invoke(main, ["new", "--model", "Qwen/Qwen3-8B", "--method", "qlora", "--stage", "sft",
                                "--dataset", "tcm_qa_train", "--name", "q3"])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(main, ["check", "recipes/q3.yaml"])
    if checks.importable("bitsandbytes"):
        assert checked.exit_code == 0, checked.output
    else:  # qlora without bitsandbytes: `check` says so (tests/recipe/test_machine_checks.py)
        assert checked.exit_code == 2 and "pip install 'factory-kit[qlora]'" in checked.output, checked.output
        checked = runner.invoke(main, ["check", "recipes/q3.yaml", "--set", "method=lora"])
        assert checked.exit_code == 0, checked.output
    assert "qwen3" in checked.output
    again = runner.invoke(main, ["new", "--model", "Qwen/Qwen3-8B", "--name", "q3"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_render_does_not_import_torch_or_llamafactory(registry_project):
    code = ("import sys; from factory_kit.cli import main; "
            "main(['render', 'recipes/tcm-lora.yaml'], standalone_mode=False); "
            "bad = [m for m in ('torch', 'llamafactory', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=registry_project, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_render_writes_files(registry_project):
    result = CliRunner().invoke(main, ["render", "recipes/tcm-full-z3.yaml"])
    assert result.exit_code == 0, result.output
    out = registry_project / "build" / "tcm-full-z3"
    assert sorted(p.name for p in out.iterdir()) == ["deepspeed.json", "export.yaml", "infer.yaml", "launch.env",
                                                     "train.yaml"]
    assert "FORCE_TORCHRUN=1" in (out / "launch.env").read_text()
    assert "NPROC_PER_NODE=8" in (out / "launch.env").read_text()
    assert render("recipes/tcm-full-z3.yaml").configs["train.yaml"]["deepspeed"] == "build/tcm-full-z3/deepspeed.json"


def test_a_folder_given_as_the_recipe_is_one_clear_line(registry_project):
    result = CliRunner().invoke(main, ["render", "recipes"])
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "recipes: is a folder, not a recipe file" in message
