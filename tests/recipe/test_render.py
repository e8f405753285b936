"""Rendering: the family x method x stage x hardware matrix, golden files, determinism."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from factory_kit.recipe import catalog, lfargs
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.render import render, to_yaml

# The names come from the table (catalog/profiles.yaml); what each must render is spelled out below.
METHODS, STAGES, HARDWARE = (tuple(table()) for table in (catalog.methods, catalog.stages, catalog.hardware))
GOLDEN = Path(__file__).parent / "golden"
SHIPPED = ["tcm-lora", "tcm-qlora", "tcm-full-z3", "tcm-pt", "tcm-dpo", "tcm-rm", "tcm-ppo", "medical-o1-cot",
           "demo-tiny"]
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
STAGE_DATA = {"pt": "tcm_herbs", "sft": "tcm_qa_train", "dpo": "tcm_pref", "kto": "tcm_kto", "rm": "tcm_pref",
              "ppo": "tcm_qa_train"}
# Refused on purpose for a model over 3B on one GPU: full-parameter stages that keep a frozen reference copy.
REFERENCE_COPY = {(method, stage) for method in ("full", "freeze") for stage in ("dpo", "kto", "ppo")}
REWARD_DIR = "outputs/rm-full"  # a trained full reward model (faked: config.json + value head)
# Of the matrix models only gemma-3-1b is small enough (<= 3B) for those on one GPU.
FITS_ONE_GPU = {"gemma3-text"}
FAMILY_TEMPLATES = {
    "huatuogpt-o1-qwen": "qwen", "huatuogpt-o1-llama": "llama3", "medgemma-text": "gemma2", "medgemma": "gemma3",
    "biomistral": "mistral", "deepseek-r1-distill-qwen": "deepseekr1", "deepseek-r1-0528-qwen3": "deepseekr1",
    "deepseek-r1-distill-llama": "deepseekr1", "qwen3-2507-instruct": "qwen3_nothink",
    "qwen3-2507-thinking": "qwen3", "qwen3": "qwen3", "qwq": "qwen", "qwen2.5": "qwen", "llama3": "llama3",
    "glm-z1": "glmz1", "glm4": "glm4", "internlm": "intern2", "yi": "yi", "mistral-small": "mistral_small",
    "ministral": "ministral", "mistral": "mistral", "gemma3-text": "gemma2", "gemma3": "gemma3", "gemma2": "gemma2",
}
METHOD_KEYS = {  # what each method writes into train.yaml (None: the key is absent)
    "lora": {"finetuning_type": "lora", "quantization_bit": None, "use_dora": None},
    "qlora": {"finetuning_type": "lora", "quantization_bit": 4, "use_dora": None},
    "dora": {"finetuning_type": "lora", "quantization_bit": None, "use_dora": True},
    "full": {"finetuning_type": "full", "quantization_bit": None, "use_dora": None},
    "freeze": {"finetuning_type": "freeze", "quantization_bit": None, "use_dora": None},
}
TORCHRUN = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "1"}
HARDWARE_EXPECTED = {  # hardware -> (train.yaml names a deepspeed file, launch env, ray_* keys)
    "single": (False, {}, {}),
    "ddp": (False, TORCHRUN, {}),
    "ds-z2": (True, TORCHRUN, {}),
    "ds-z3": (True, TORCHRUN, {}),
    "ds-z3-offload": (True, TORCHRUN, {}),
    "multi-node": (False, {**TORCHRUN, "NNODES": "2", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29500",
                           "NODE_RANK": "0"}, {}),
    "ray": (False, {"USE_RAY": "1"}, {"ray_num_workers": 1, "ray_init_kwargs": {"num_cpus": 10, "num_gpus": 1}}),
}


def _sets(model, method, stage, hardware):
    sets = [f"model={model}", f"method={method}", f"stage={stage}", f"hardware={hardware}",
            f"datasets=[{STAGE_DATA[stage]}]", "eval_datasets=[]"]
    if hardware == "multi-node":
        sets += ["nodes.count=2", "nodes.master_addr=10.1.2.3"]
    if stage == "ppo":
        sets.append(f"reward_model={REWARD_DIR}")
    return sets


@pytest.fixture
def matrix_project(registry_project):
    folder = registry_project / REWARD_DIR
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "value_head.safetensors").write_bytes(b"")
    return registry_project


def test_every_usable_family_has_a_matrix_model():
    usable = {name for name, fam in catalog.families().items() if fam.usable}
    missing = usable - set(FAMILY_MODELS) - {"qwen3.5", "qwen2-vl", "qwen2.5-omni", "llama3-vision", "ministral3"}
    assert not missing, f"add a model for {missing}"
    for family, model in FAMILY_MODELS.items():
        assert catalog.resolve(model).family.name == family


@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_matrix_family_x_method_x_stage(matrix_project, family):
    """Every family x method x stage on one GPU renders, and every file passes the check."""
    model = FAMILY_MODELS[family]
    for method, stage in itertools.product(METHODS, STAGES):
        sets = _sets(model, method, stage, "single")
        if (method, stage) in REFERENCE_COPY and family not in FITS_ONE_GPU:
            with pytest.raises(FactoryKitError, match="reference copy"):
                render("recipes/tcm-lora.yaml", sets, write=False)
            continue
        out = render("recipes/tcm-lora.yaml", sets, write=False)
        train = out.configs["train.yaml"]
        assert train["stage"] == stage and train["template"] == FAMILY_TEMPLATES[family]
        assert {key: train.get(key) for key in METHOD_KEYS[method]} == METHOD_KEYS[method], (family, method, stage)
        assert ("reward_model" in train) == (stage == "ppo")
        for name, config in out.configs.items():
            assert not lfargs.check(config, "train" if name == "train.yaml" else "infer"), (family, method, stage)


@pytest.mark.parametrize("hardware", HARDWARE)
def test_matrix_hardware_x_method_x_stage(matrix_project, hardware):
    for method, stage in itertools.product(METHODS, STAGES):
        sets = _sets("Qwen/Qwen2.5-1.5B-Instruct", method, stage, hardware)
        out = render("recipes/tcm-lora.yaml", sets, write=False)
        train = out.configs["train.yaml"]
        deepspeed, env, ray = HARDWARE_EXPECTED[hardware]
        assert ("deepspeed" in train) == deepspeed, (method, stage)
        assert out.env == env, (method, stage)
        assert {k: v for k, v in train.items() if k.startswith("ray_")} == ray, (method, stage)


@pytest.mark.parametrize("hardware, zero_stage, offload, golden", [
    ("ds-z2", 2, False, "deepspeed/ds-z2.json"),
    ("ds-z3", 3, False, "tcm-full-z3/deepspeed.json"),
    ("ds-z3-offload", 3, True, "deepspeed/ds-z3-offload.json"),
])
def test_deepspeed_json_written_and_valid(registry_project, hardware, zero_stage, offload, golden):
    out = render("recipes/tcm-full-z3.yaml", [f"hardware={hardware}"])
    text = out.files["deepspeed.json"].read_text(encoding="utf-8")
    zero = json.loads(text)["zero_optimization"]
    assert zero["stage"] == zero_stage
    assert ("offload_param" in zero, "offload_optimizer" in zero) == (offload, offload)
    assert text == (GOLDEN / golden).read_text(encoding="utf-8"), f"{hardware}: deepspeed.json differs from {golden}"


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
