"""Rendering: the family x method x stage x hardware matrix, golden files, determinism."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from factory_kit.recipe import catalog, lfargs
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.load import HARDWARE, METHODS, STAGES
from factory_kit.recipe.render import render, to_yaml

GOLDEN = Path(__file__).parent / "golden"
SHIPPED = ["tcm-lora", "tcm-qlora", "tcm-full-z3", "tcm-pt", "tcm-dpo", "medical-o1-cot", "demo-tiny"]
# One real HF id per usable family (the catalog test proves ids resolve; here they render).
FAMILY_MODELS = {
    "huatuogpt-o1-qwen": "FreedomIntelligence/HuatuoGPT-o1-7B",
    "huatuogpt-o1-llama": "FreedomIntelligence/HuatuoGPT-o1-8B",
    "medgemma-text": "google/medgemma-27b-text-it",
    "medgemma": "google/medgemma-4b-it",
    "biomistral": "BioMistral/BioMistral-7B",
    "deepseek-r1-distill-qwen": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-r1-0528-qwen3": "deepseek-ai/DeepSeek-R1-0528-Qwen3-8B",
    "deepseek-r1-distill-llama": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "qwen3-2507-instruct": "Qwen/Qwen3-4B-Instruct-2507",
    "qwen3-2507-thinking": "Qwen/Qwen3-4B-Thinking-2507",
    "qwen3": "Qwen/Qwen3-8B",
    "qwq": "Qwen/QwQ-32B",
    "qwen2.5": "Qwen/Qwen2.5-7B-Instruct",
    "llama3": "meta-llama/Llama-3.1-8B-Instruct",
    "glm-z1": "THUDM/GLM-Z1-9B-0414",
    "glm4": "THUDM/glm-4-9b-chat",
    "internlm": "internlm/internlm2_5-7b-chat",
    "yi": "01-ai/Yi-1.5-9B-Chat",
    "mistral-small": "mistralai/Mistral-Small-24B-Instruct-2501",
    "ministral": "mistralai/Ministral-8B-Instruct-2410",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
    "gemma3-text": "google/gemma-3-1b-it",
    "gemma3": "google/gemma-3-12b-it",
    "gemma2": "google/gemma-2-9b-it",
}
STAGE_DATA = {"pt": "tcm_herbs", "sft": "tcm_qa_train", "dpo": "tcm_pref", "kto": "tcm_kto"}


def _sets(model, method, stage, hardware):
    sets = [f"model={model}", f"method={method}", f"stage={stage}", f"hardware={hardware}",
            f"datasets=[{STAGE_DATA[stage]}]", "eval_datasets=[]"]
    if hardware == "multi-node":
        sets += ["nodes.count=2", "nodes.master_addr=10.1.2.3"]
    return sets


def _expect_error(method, stage, hardware, params_b):
    """The combinations factory-kit refuses on purpose (each has its own reason)."""
    return stage in ("dpo", "kto") and method in ("full", "freeze") and hardware == "single" and (params_b or 0) > 3


def test_every_usable_family_has_a_matrix_model():
    usable = {name for name, fam in catalog.families().items() if fam.usable}
    missing = usable - set(FAMILY_MODELS) - {"qwen3.5", "qwen2-vl", "qwen2.5-omni", "llama3-vision", "ministral3"}
    assert not missing, f"add a model for {missing}"
    for family, model in FAMILY_MODELS.items():
        assert catalog.resolve(model).family.name == family


@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_matrix_family_x_method_x_stage(registry_project, family):
    """Every family x method x stage on one GPU renders, and every file passes the check."""
    model = FAMILY_MODELS[family]
    params = catalog.resolve(model).params_b
    for method, stage in itertools.product(METHODS, STAGES):
        sets = _sets(model, method, stage, "single")
        if _expect_error(method, stage, "single", params):
            with pytest.raises(FactoryKitError, match="reference copy"):
                render("recipes/tcm-lora.yaml", sets, write=False)
            continue
        out = render("recipes/tcm-lora.yaml", sets, write=False)
        train = out.configs["train.yaml"]
        assert train["stage"] == stage and train["template"] == catalog.resolve(model).family.template
        assert train["finetuning_type"] == {"qlora": "lora", "dora": "lora"}.get(method, method)
        assert ("quantization_bit" in train) == (method == "qlora")
        assert train.get("use_dora", False) == (method == "dora")
        for name, config in out.configs.items():
            assert not lfargs.check(config, "train" if name == "train.yaml" else "infer"), (family, method, stage)


@pytest.mark.parametrize("hardware", HARDWARE)
def test_matrix_hardware_x_method_x_stage(registry_project, hardware):
    for method, stage in itertools.product(METHODS, STAGES):
        sets = _sets("Qwen/Qwen2.5-1.5B-Instruct", method, stage, hardware)
        out = render("recipes/tcm-lora.yaml", sets, write=False)
        train = out.configs["train.yaml"]
        assert ("deepspeed" in train) == hardware.startswith("ds-")
        if hardware.startswith("ds-"):
            assert out.env["FORCE_TORCHRUN"] == "1"
        if hardware == "multi-node":
            assert out.env["NNODES"] == "2" and out.env["MASTER_ADDR"] == "10.1.2.3"
        if hardware == "ray":
            assert out.env == {"USE_RAY": "1"} and train["ray_num_workers"] == 1


@pytest.mark.parametrize("hardware", ["ds-z2", "ds-z3", "ds-z3-offload"])
def test_deepspeed_json_written_and_valid(registry_project, hardware):
    out = render("recipes/tcm-full-z3.yaml", [f"hardware={hardware}"])
    ds = json.loads(out.files["deepspeed.json"].read_text())
    assert ds["zero_optimization"]["stage"] == (2 if hardware == "ds-z2" else 3)
    assert ("offload_param" in ds["zero_optimization"]) == (hardware == "ds-z3-offload")


@pytest.mark.parametrize("recipe", SHIPPED)
def test_golden_files(registry_project, recipe):
    """Shipped recipes render byte-for-byte as pinned (UPDATE_GOLDEN=1 re-pins after a deliberate change)."""
    out = render(f"recipes/{recipe}.yaml")
    for name, path in sorted(out.files.items()):
        golden = GOLDEN / recipe / name
        text = path.read_text(encoding="utf-8")
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        assert golden.exists(), f"no golden file {golden}; run with UPDATE_GOLDEN=1"
        assert text == golden.read_text(encoding="utf-8"), f"{recipe}/{name} differs from its golden file"
    assert sorted(p.name for p in (GOLDEN / recipe).iterdir()) == sorted(out.files)


def test_render_is_deterministic_and_headed(registry_project):
    first = {n: p.read_bytes() for n, p in render("recipes/tcm-lora.yaml").files.items()}
    second = {n: p.read_bytes() for n, p in render("recipes/tcm-lora.yaml").files.items()}
    assert first == second
    for name, data in first.items():
        head = data.decode().splitlines()[0]
        if name == "llamaboard.yaml":  # the web UI's saved-arguments file, in llamaboard_config/
            assert head.endswith("for recipe tcm-lora, written by factory-kit render."), head
        else:
            assert head.startswith("# Rendered by factory-kit from recipes/tcm-lora.yaml"), name


def test_raw_llamafactory_keys_merge_last(registry_project):
    out = render("recipes/tcm-lora.yaml", ["llamafactory={enable_liger_kernel: true, learning_rate: 3.0e-5}"])
    text = out.files["train.yaml"].read_text()
    assert out.configs["train.yaml"]["learning_rate"] == pytest.approx(3e-5)
    assert out.configs["train.yaml"]["enable_liger_kernel"] is True
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith("#")]
    assert keys.count("learning_rate") == 1  # overridden, not written twice (LLaMA-Factory would take the last)


def test_mixing_ratios(registry_project):
    out = render("recipes/tcm-lora.yaml", ["mix.strategy=interleave_under", "mix.probs=[0.8, 0.2]"])
    assert out.configs["train.yaml"]["mix_strategy"] == "interleave_under"
    assert out.configs["train.yaml"]["interleave_probs"] == "0.8,0.2"


def test_template_override_allows_removed_family(registry_project):
    out = render("recipes/tcm-lora.yaml", ["model=baichuan-inc/Baichuan2-7B-Chat", "template=qwen"], write=False)
    assert out.configs["train.yaml"]["template"] == "qwen"


def test_floats_survive_pyyaml():
    """OmegaConf (PyYAML) reads '1e-05' as a string; we always write '1.0e-05'."""
    import yaml

    for value in (1e-4, 5e-5, 2e-3, 1.0, 0.1, 1e-10, 3.0e-5):
        assert yaml.safe_load(f"x: {to_yaml(value)}")["x"] == value
