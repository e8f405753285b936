"""`factory-kit new`: values from the catalog, safe for the model and stage, and its output passes `check`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog
from factory_kit.recipe.load import load
from factory_kit.recipe.render import render
from factory_kit.recipe.scaffold import scaffold

# One real model id per family of the catalog (a test below fails when a family has none here).
MODEL_OF = {
    "huatuogpt-o1-qwen": "FreedomIntelligence/HuatuoGPT-o1-7B",
    "huatuogpt-o1-llama": "FreedomIntelligence/HuatuoGPT-o1-8B",
    "huatuogpt2": "FreedomIntelligence/HuatuoGPT2-7B",
    "disc-medllm": "Flmc/DISC-MedLLM",
    "bianque-2": "scutcyr/BianQue-2",
    "medgemma-text": "google/medgemma-27b-text-it",
    "medgemma": "google/medgemma-4b-it",
    "biomistral": "BioMistral/BioMistral-7B",
    "deepseek-r1-distill-qwen": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-r1-0528-qwen3": "deepseek-ai/DeepSeek-R1-0528-Qwen3-8B",
    "deepseek-r1-distill-llama": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "qwen3-2507-instruct": "Qwen/Qwen3-4B-Instruct-2507",
    "qwen3-2507-thinking": "Qwen/Qwen3-4B-Thinking-2507",
    "qwen3.5": "Qwen/Qwen3.5-9B",
    "qwen3": "Qwen/Qwen3-8B",
    "qwen2-vl": "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen2.5-omni": "Qwen/Qwen2.5-Omni-7B",
    "qwq": "Qwen/QwQ-32B",
    "qwen2.5": "Qwen/Qwen2.5-7B-Instruct",
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llama3-vision": "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "llama3": "meta-llama/Llama-3.1-8B-Instruct",
    "glm-z1": "THUDM/GLM-Z1-9B-0414",
    "glm4": "THUDM/GLM-4-9B-0414",
    "internlm": "internlm/internlm2_5-7b-chat",
    "yi": "01-ai/Yi-1.5-9B-Chat",
    "mistral-small": "mistralai/Mistral-Small-24B-Instruct-2501",
    "ministral3": "mistralai/Ministral-3-8B-Instruct-2512",
    "ministral": "mistralai/Ministral-8B-Instruct-2410",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
    "gemma3-text": "google/gemma-3-1b-it",
    "gemma3": "google/gemma-3-12b-it",
    "gemma2": "google/gemma-2-9b-it",
    "baichuan2": "baichuan-inc/Baichuan2-7B-Chat",
    "baichuan": "baichuan-inc/Baichuan-13B-Chat",
}
REASONING_ROWS = [{"instruction": f"患者舌淡胖，脉缓弱{i}，如何辨证？", "input": "",
                   "output": "<think>\n食少便溏，病位在脾。\n</think>\n\n脾气虚证，四君子汤加减。", "system": ""}
                  for i in range(8)]


@pytest.fixture
def scaffold_project(registry_project) -> Path:
    """The registry project, its `medical_o1_cot` holding <think> reasoning (as the real import writes it)
    and every stage's sample data registered."""
    data = registry_project / "data" / "cot.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in REASONING_ROWS), encoding="utf-8")
    reg = registry_project / "dataset_info" / "dataset_info.json"
    entries = json.loads(reg.read_text(encoding="utf-8"))
    entries["medical_o1_cot"] = {**entries["medical_o1_cot"], "file_name": "../data/cot.jsonl"}
    reg.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    return registry_project


def _new_then_check(project: Path, model: str, method: str, stage: str, hardware: str = "single",
                    datasets: tuple[str, ...] = ()) -> tuple[Path | None, str]:
    """Scaffold (as `new` does), then check (as `check` does). A refusal must write nothing and say why."""
    name = f"g-{Path(model).name.lower()}-{method}-{stage}-{hardware}"
    out = project / "recipes" / f"{name}.yaml"
    before = set((project / "recipes").iterdir())
    try:
        made = scaffold(model, method, stage, hardware, list(datasets), None, name)
    except FactoryKitError as exc:
        assert set((project / "recipes").iterdir()) == before, f"{name}: refused, but left files behind"
        assert "wrote nothing" in str(exc) and "\n" not in str(exc), str(exc)
        return None, str(exc)
    assert made.pending is None, f"{name}: {made.pending}"
    render(f"recipes/{name}.yaml", write=False)  # raises when `check` would fail
    for also in made.also:
        render(f"recipes/{also.name}", write=False)
    return out, ""


def test_every_family_has_a_model_id_here():
    assert sorted(MODEL_OF) == sorted(catalog.families())


@pytest.mark.parametrize("family", sorted(catalog.families()))
def test_new_output_passes_check_for_every_family_stage_and_method(scaffold_project, family):
    """The rule: `new` output passes `check`. Per family: every stage (LoRA) and every method (SFT)."""
    fam = catalog.families()[family]
    model = MODEL_OF[family]
    if not fam.usable:  # no LLaMA-Factory template: `new` refuses with the family's own fix
        with pytest.raises(FactoryKitError, match="template"):
            scaffold(model, "lora", "sft", "single", [], None, "x")
        assert not (scaffold_project / "recipes" / "x.yaml").exists()
        return
    combos = [("lora", stage) for stage in catalog.stages()] + [(m, "sft") for m in catalog.methods() if m != "lora"]
    passed = 0
    for method, stage in combos:
        out, refused = _new_then_check(scaffold_project, model, method, stage)
        if out is None:
            assert method in ("full", "freeze") or stage in ("dpo", "kto", "ppo"), refused
            continue
        passed += 1
        text = out.read_text(encoding="utf-8")
        assert f"method: {method}" in text and f"stage: {stage}" in text
    assert passed >= len(combos) - 1


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B",
                                   "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"])
def test_new_output_passes_check_for_every_method_x_stage(scaffold_project, model):
    refused = []
    for method in catalog.methods():
        for stage in catalog.stages():
            out, why = _new_then_check(scaffold_project, model, method, stage)
            if out is None:
                refused.append((method, stage, why))
    small = "0.5B" in model
    for method, stage, why in refused:  # only what check refuses for memory: full-parameter preference tuning
        assert method in ("full", "freeze") and stage in ("dpo", "kto", "ppo") and not small, (method, stage, why)
        assert "will not fit on one GPU" in why and "`factory-kit new` wrote nothing" in why


def test_new_output_passes_check_on_every_hardware(scaffold_project):
    for hardware in catalog.hardware():
        for method in ("qlora", "full"):
            for stage in ("sft", "ppo"):
                out, why = _new_then_check(scaffold_project, "Qwen/Qwen2.5-7B-Instruct", method, stage, hardware)
                assert out is not None or (hardware in ("single", "multi-node", "ray") and method == "full"
                                           and stage != "sft"), (hardware, method, stage, why)


def _train(path: Path) -> dict:
    return load(path).data["train"]


def test_reasoning_model_gets_a_context_and_answer_length_that_fit(scaffold_project):
    """R1-Distill-Llama-8B used to get cutoff 8192 x batch 2 (the shipped medical-o1 recipe measured 4096 x 1
    at ~22 GB for a 7B) and max_new_tokens 512, which cuts answers off mid-reasoning."""
    made = scaffold("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "lora", "sft", "single", [], None, None)
    r = load(made.path)
    assert (r.data["train"]["cutoff_len"], r.data["train"]["batch_size"], r.data["train"]["grad_accum"]) == (4096, 1, 16)
    assert r.data["infer"]["max_new_tokens"] >= 4096 and r.data["predict"]["max_new_tokens"] >= 4096
    assert r.data["datasets"] == ["medical_o1_cot"]  # the reasoning sample, not plain QA
    assert made.warnings == []  # reasoning data for a reasoning model: nothing to warn about
    plain = scaffold("Qwen/Qwen2.5-7B-Instruct", "lora", "sft", "single", [], None, None)
    assert load(plain.path).data["infer"]["max_new_tokens"] == 512  # unchanged for a model that does not reason
    assert _train(plain.path)["cutoff_len"] == 4096 and _train(plain.path)["batch_size"] == 2


@pytest.mark.parametrize("method, stage, lr", [
    ("lora", "dpo", 5.0e-6), ("lora", "kto", 5.0e-6), ("lora", "ppo", 1.0e-5), ("lora", "rm", 1.0e-4),
    ("lora", "pt", 1.0e-4), ("lora", "sft", 1.0e-4), ("full", "sft", 1.0e-5), ("full", "pt", 1.0e-5),
    ("qlora", "dpo", 5.0e-6), ("freeze", "sft", 1.0e-4),
])
def test_learning_rate_comes_from_the_method_and_stage_rows(scaffold_project, method, stage, lr):
    """LLaMA-Factory's examples (and recipes/tcm-dpo.yaml): DPO/KTO at 5e-6, PPO 1e-5; the smaller of the
    method's and the stage's wins (full-parameter pre-training stays at 1e-5)."""
    made = scaffold("Qwen/Qwen2.5-0.5B-Instruct", method, stage, "single", [], None, None)
    train = _train(made.path)
    assert train["learning_rate"] == lr
    if stage in ("dpo", "kto", "rm", "ppo", "pt"):
        assert (train["cutoff_len"], train["batch_size"]) == (2048, 1)


def test_full_on_a_7b_with_one_gpu_warns_at_new_and_at_check(scaffold_project):
    """The planner (recipe/plan.py) says so, against the hardware profile's GPU (an 80 GB A100)."""
    made = scaffold("Qwen/Qwen2.5-7B-Instruct", "full", "sft", "single", ["tcm_qa_train"], None, "f7")
    assert any("GB per GPU" in w and "A100 80GB has 80 GB" in w for w in made.warnings), made.warnings
    checked = CliRunner().invoke(main, ["check", "recipes/f7.yaml"])
    assert checked.exit_code == 0 and "gradients and optimizer states" in " ".join(checked.output.split())
    small = scaffold("Qwen/Qwen2.5-1.5B-Instruct", "full", "sft", "single", ["tcm_qa_train"], None, "f1")
    assert not any("GB per GPU" in w for w in small.warnings)
    sharded = render("recipes/f7.yaml", ["hardware=ds-z3", "nodes.gpus_per_node=4"], write=False)
    assert not any("GB per GPU" in w for w in sharded.warnings)


def test_full_preference_tuning_that_check_refuses_is_refused_by_new(scaffold_project):
    with pytest.raises(FactoryKitError, match=r"reference copy .* wrote nothing"):
        scaffold("Qwen/Qwen2.5-7B-Instruct", "full", "dpo", "single", [], None, "fd")
    assert not (scaffold_project / "recipes" / "fd.yaml").exists()


def test_qwen3_on_cot_data_gets_thinking_and_passes_its_own_check(scaffold_project):
    """`new --model Qwen/Qwen3-8B --dataset <CoT data>` wrote a recipe its own `check` rejected (thinking
    off strips the <think> reasoning); `thinking` now comes from the data."""
    made = scaffold("Qwen/Qwen3-8B", "lora", "sft", "single", ["medical_o1_cot"], None, "q3cot")
    text = made.path.read_text(encoding="utf-8")
    assert "thinking: true" in text and load(made.path).data["infer"]["max_new_tokens"] == 4096
    out = render("recipes/q3cot.yaml", write=False)
    assert out.context["thinking"] is True and not any("no reasoning" in w for w in out.warnings)
    plain = scaffold("Qwen/Qwen3-8B", "lora", "sft", "single", ["tcm_qa_train"], None, "q3qa")
    assert "thinking" not in plain.path.read_text(encoding="utf-8").replace("# ", "")
    assert render("recipes/q3qa.yaml", write=False).context["thinking"] is False


def test_the_real_cot_import_makes_qwen3_think(project):
    """The issue's own steps: the shipped samples imported for real, then new, then check."""
    runner = CliRunner()
    assert runner.invoke(main, ["data", "samples"]).exit_code == 0
    made = runner.invoke(main, ["new", "--model", "Qwen/Qwen3-8B", "--dataset", "medical_o1_cot", "--name", "q"])
    assert made.exit_code == 0, made.output
    assert "thinking: true" in (project / "recipes" / "q.yaml").read_text(encoding="utf-8")
    checked = runner.invoke(main, ["check", "recipes/q.yaml"])
    assert checked.exit_code == 0, checked.output


def test_reasoning_model_on_data_without_reasoning_warns_at_check(scaffold_project):
    """LLaMA-Factory trains an empty <think></think> block before each answer: the model learns to skip its
    reasoning. `check` says so, with the fix."""
    (scaffold_project / "recipes" / "r1qa.yaml").write_text(
        "model: deepseek-ai/DeepSeek-R1-Distill-Qwen-7B\ndatasets: [tcm_qa_train]\n", encoding="utf-8")
    out = render("recipes/r1qa.yaml", write=False)
    [warning] = [w for w in out.warnings if "no reasoning" in w]
    assert "`tcm_qa_train` holds no reasoning (<think> ...)" in warning and "always think" in warning
    assert "<think></think>" in warning and "--format cot" in warning and "Qwen/Qwen2.5-7B-Instruct" in warning
    checked = CliRunner().invoke(main, ["check", "recipes/r1qa.yaml"])
    assert checked.exit_code == 0 and "holds no reasoning" in checked.output
    # a hybrid model told to think on the same data: the fix is `thinking: false`
    (scaffold_project / "recipes" / "q3.yaml").write_text(
        "model: Qwen/Qwen3-8B\nthinking: true\ndatasets: [tcm_qa_train]\n", encoding="utf-8")
    [warning] = [w for w in render("recipes/q3.yaml", write=False).warnings if "no reasoning" in w]
    assert "set `thinking: false`" in warning
    # reasoning data, or a model that does not reason: quiet
    assert not any("no reasoning" in w for w in render("recipes/r1qa.yaml", ["datasets=medical_o1_cot"],
                                                          write=False).warnings)
    (scaffold_project / "recipes" / "q25.yaml").write_text(
        "model: Qwen/Qwen2.5-7B-Instruct\ndatasets: [tcm_qa_train]\n", encoding="utf-8")
    assert not any("no reasoning" in w for w in render("recipes/q25.yaml", write=False).warnings)


def test_ppo_gets_a_reward_model_recipe_for_its_own_model(scaffold_project):
    made = scaffold("Qwen/Qwen3-8B", "lora", "ppo", "single", [], None, None)
    [rm] = made.also
    assert rm.name == "qwen3-8b-lora-rm.yaml" and "reward_model: qwen3-8b-lora-rm.yaml" in made.path.read_text()
    assert load(rm).data["stage"] == "rm" and load(rm).data["model"] == "Qwen/Qwen3-8B"
    again = scaffold("Qwen/Qwen3-8B", "lora", "ppo", "single", [], None, "p2")
    assert again.also == [] and "reward_model: qwen3-8b-lora-rm.yaml" in again.path.read_text()
    shipped = scaffold("Qwen/Qwen2.5-7B-Instruct", "lora", "ppo", "single", [], None, "p3")
    assert shipped.also == [] and "reward_model: tcm-rm.yaml" in shipped.path.read_text()  # the shipped pair


def test_new_cli_is_case_insensitive_lists_choices_and_never_breaks_the_command(scaffold_project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    helped = runner.invoke(main, ["new", "--help"], terminal_width=80)
    for listed in ("[lora|qlora|dora|full|freeze]", "[pt|sft|dpo|kto|rm|ppo]", "ds-z3-offload"):
        assert listed in helped.output
    name = "a-rather-long-recipe-name-that-makes-the-suggested-command-wider-than-eighty-columns"
    made = runner.invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--method", "LoRA", "--stage", "DPO",
                                "--hardware", "Single", "--name", name], terminal_width=80)
    assert made.exit_code == 0, made.output
    assert f"factory-kit check recipes/{name}.yaml" in made.output.splitlines()[-1]
    text = (scaffold_project / "recipes" / f"{name}.yaml").read_text()
    assert "method: lora" in text and "stage: dpo" in text and "hardware: single" in text
    bad = runner.invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--stage", "sftt"])
    assert bad.exit_code == 2 and "'sftt' is not one of" in bad.output
    with pytest.raises(FactoryKitError, match="choose one of lora, qlora"):
        scaffold("Qwen/Qwen2.5-7B-Instruct", "lroa", "sft", "single", [], None, "z")


def test_new_says_what_check_still_needs(project):
    """No datasets imported yet: the recipe is written, and the missing import is named."""
    made = CliRunner().invoke(main, ["new", "--model", "Qwen/Qwen2.5-7B-Instruct", "--name", "fresh"])
    assert made.exit_code == 0, made.output
    assert "fails until this is fixed" in made.output and "factory-kit data samples" in made.output
    assert (project / "recipes" / "fresh.yaml").is_file()
