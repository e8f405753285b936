"""`factory-kit plan`: GPU memory before launch, checked against published figures and accelerate."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from factory_kit.cli import main
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe import catalog
from factory_kit.recipe import plan as P
from factory_kit.recipe.render import render

QWEN = P.architectures()["qwen2.5"]

# LLaMA-Factory's README, "Hardware Requirement" (estimated GB; x = billions of parameters):
# Full (bf16 or fp16, i.e. AMP) 18x, Full (pure_bf16) 8x, Freeze/LoRA/GaLore/APOLLO/BAdam 2x,
# QLoRA 8-bit x, QLoRA 4-bit x/2. Its columns 7B, 14B, 30B, 70B <-> Qwen2.5 7B, 14B, 32B, 72B here.
LLAMAFACTORY_TABLE = {
    "full": {"7b": 120, "14b": 240, "32b": 600, "72b": 1200},
    "pure_bf16": {"7b": 60, "14b": 120, "32b": 300, "72b": 600},
    "lora": {"7b": 16, "14b": 32, "32b": 64, "72b": 160},
    "freeze": {"7b": 16, "14b": 32, "32b": 64, "72b": 160},
    "qlora8": {"7b": 10, "14b": 20, "32b": 40, "72b": 80},
    "qlora4": {"7b": 6, "14b": 12, "32b": 24, "72b": 48},
}
SETUPS = {
    "full": P.Setup(method="full", finetuning="full"),
    "pure_bf16": P.Setup(method="full", finetuning="full", pure_bf16=True),
    "lora": P.Setup(),
    "freeze": P.Setup(method="freeze", finetuning="freeze"),
    "qlora8": P.Setup(method="qlora", quant_bits=8),
    "qlora4": P.Setup(method="qlora", quant_bits=4),
}


@pytest.mark.parametrize("method", list(LLAMAFACTORY_TABLE))
@pytest.mark.parametrize("size", ["7b", "14b", "32b", "72b"])
def test_plan_agrees_with_llamafactorys_hardware_table(method, size):
    """The table is rough and per method (a short sequence, batch 1): within 0.8x-1.6x of it, and the same
    ordering of methods, is what a planner for choosing hardware must reach."""
    setup = replace(SETUPS[method], batch_size=1, cutoff_len=512)
    total = P.estimate(QWEN[size], setup).total
    published = LLAMAFACTORY_TABLE[method][size]
    assert 0.8 * published <= total <= 1.6 * published, (method, size, round(total, 1), published)


def test_methods_order_as_published():
    totals = [P.estimate(QWEN["7b"], replace(SETUPS[m], batch_size=1, cutoff_len=512)).total
              for m in ("full", "pure_bf16", "lora", "qlora8", "qlora4")]
    assert totals == sorted(totals, reverse=True)


def _qwen7b_config() -> dict:
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
            "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
            "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0}


def test_weights_and_training_states_match_accelerate_estimate_memory():
    """`accelerate estimate-memory` needs the hub; its functions do the same on an empty (meta) model built
    from a Qwen2.5-7B config.json: the parameter count and the 18 bytes per parameter of mixed precision."""
    from accelerate import init_empty_weights
    from accelerate.commands.estimate import estimate_training_usage
    from accelerate.utils import calculate_maximum_sizes
    from transformers import AutoConfig, AutoModelForCausalLM

    config = _qwen7b_config()
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    fp32_bytes, _ = calculate_maximum_sizes(model)
    shape = P.shape_from_config(config, "test")
    assert shape.params == pytest.approx(fp32_bytes / 4, rel=0.005)  # biases of q/k/v are all we leave out
    assert shape == QWEN["7b"].__class__(**{**shape.__dict__, "source": shape.source})
    assert QWEN["7b"].params == shape.params  # the catalog row is the hub's config
    usage = estimate_training_usage(fp32_bytes, "bfloat16")
    accelerate_gib = (usage["model"] + usage["gradients"] + usage["optimizer"]) / P.GIB
    e = P.estimate(shape, P.Setup(method="full", finetuning="full", batch_size=1, cutoff_len=16))
    assert e.weights + e.gradients + e.optimizer == pytest.approx(accelerate_gib, rel=0.02)


def test_local_config_json_wins_over_the_catalog(tmp_path):
    folder = tmp_path / "models" / "Qwen2.5-7B-Instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**_qwen7b_config(), "num_hidden_layers": 14}))
    shape = P.model_shape("models/Qwen2.5-7B-Instruct", "qwen2.5", 7.62, tmp_path)
    assert shape.layers == 14 and "config.json" in shape.source
    assert P.model_shape("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", 7.62, tmp_path).layers == 28  # the catalog row
    near = P.model_shape("someone/Qwen2.5-9B-TCM", "qwen2.5", 9.0, tmp_path)  # no 9b row: nearest by size
    assert near.source.startswith("nearest") and "qwen2.5 7b" in near.source
    assert P.model_shape("someone/custom", "custom", None, tmp_path) is None


def test_does_not_fit_a_4090_then_the_cheapest_fix_makes_it_fit():
    """LoRA on a 7B at 2 x 2048 needs ~28 GB: on a 24 GB card a smaller micro-batch with more accumulation
    fits (same tokens per optimizer step), before anything slower or lossier is suggested."""
    base = P.Setup(batch_size=2, grad_accum=8, cutoff_len=2048)
    plan = P.fit(QWEN["7b"], base, P.find_gpu("RTX 4090"))
    assert plan.fits is False and plan.estimate.total > 24
    assert plan.changes == {"train.batch_size": 1, "train.grad_accum": 16}
    assert plan.fixed.total <= 24 and plan.fixed_setup.tokens_per_step == base.tokens_per_step == 32768
    assert "same 32,768 tokens per optimizer step" in plan.advice()


def test_qlora_is_the_fix_when_the_bf16_base_alone_is_too_big():
    """A 32B base in bf16 is 61 GB: nothing but a 4-bit base (or ZeRO-3 over GPUs) fits it in 48 GB."""
    plan = P.fit(QWEN["32b"], P.Setup(batch_size=1, grad_accum=16, cutoff_len=2048), P.find_gpu("l40s"))
    assert plan.fits is False and plan.estimate.weights > 48
    assert plan.changes["method"] == "qlora" and plan.changes["quant.bits"] == 4
    assert plan.fixed.total <= P.find_gpu("l40s").memory_gb


def test_zero3_is_the_fix_for_full_fine_tuning_and_shards_by_gpu_count():
    """Full fine-tuning of a 7B keeps ~137 GB of weights, gradients and AdamW states on one GPU: the advice
    is ZeRO-3 over the fewest GPUs that fit, and the states shrink with the GPU count."""
    full = P.Setup(method="full", finetuning="full", batch_size=1, grad_accum=8, cutoff_len=2048)
    plan = P.fit(QWEN["7b"], full, P.find_gpu("a100-80"))
    assert plan.fits is False and plan.estimate.total > 130
    assert plan.changes["hardware"] == "ds-z3" and plan.changes["nodes.gpus_per_node"] == 2
    assert "qlora" not in plan.changes.values()  # a full recipe is not told to become an adapter
    sharded = [P.estimate(QWEN["7b"], replace(full, zero_stage=3, gpus=n)).optimizer for n in (2, 4, 8)]
    assert sharded[0] == pytest.approx(2 * sharded[1]) == pytest.approx(4 * sharded[2])
    offload = P.estimate(QWEN["7b"], replace(full, zero_stage=3, gpus=1, offload=("optimizer", "param")))
    assert offload.optimizer == 0 and offload.total < 25  # ZeRO-3 offload: a 7B full on one 24-48 GB GPU


def test_knobs_move_memory_the_right_way():
    s = P.Setup(batch_size=2, cutoff_len=4096)
    e = P.estimate(QWEN["7b"], s)
    assert P.estimate(QWEN["7b"], replace(s, gradient_checkpointing=False)).activations > 5 * e.activations
    assert P.estimate(QWEN["7b"], replace(s, liger=True)).logits == 0
    assert P.estimate(QWEN["7b"], replace(s, stage="dpo")).activations == pytest.approx(2 * e.activations)
    assert P.estimate(QWEN["7b"], replace(s, lora_rank=64)).optimizer == pytest.approx(4 * e.optimizer)
    assert P.estimate(QWEN["7b"], replace(s, dora=True)).gradients > e.gradients
    full_dpo = replace(s, method="full", finetuning="full", stage="dpo", reference_copy=True)
    assert P.estimate(QWEN["7b"], full_dpo).weights - P.estimate(QWEN["7b"], replace(full_dpo, reference_copy=False)
                                                                 ).weights == pytest.approx(15.2 / 1.074, rel=0.01)


def test_every_hardware_row_names_a_known_gpu_and_unknown_names_fail_with_the_list():
    for row in catalog.hardware().values():
        assert row.gpu and P.find_gpu(row.gpu)
    assert P.find_gpu("H100-80").key == "h100" and P.find_gpu("NVIDIA A100").key == "a100-80"
    with pytest.raises(FactoryKitError, match=r"unknown GPU `rtx9090`; did you mean `rtx5090`\?.*h200"):
        P.find_gpu("rtx9090")
    assert P.gpu_for_device("NVIDIA H200", 139.8).key == "h200"
    assert P.gpu_for_device("NVIDIA A100-SXM4-40GB", 39.4).key == "a100-40"


def test_shipped_recipes_fit_their_hardware_and_check_warns_on_a_smaller_gpu(registry_project):
    for recipe in ("tcm-lora", "tcm-qlora", "tcm-dpo", "tcm-rm", "tcm-pt", "tcm-full-z3", "medical-o1-cot"):
        out = render(f"recipes/{recipe}.yaml", write=False)
        assert not any("per GPU" in w for w in out.warnings), (recipe, out.warnings)
    out = render("recipes/tcm-lora.yaml", ["nodes.gpu=rtx4090"], write=False)
    [warning] = [w for w in out.warnings if "per GPU" in w]
    assert "RTX 4090" in warning and "`train.batch_size: 1`, `train.grad_accum: 16`" in warning
    (registry_project / "recipes" / "mine.yaml").write_text(
        "extends: tcm-lora.yaml\nnodes: {gpu: rtx4090}\ntrain: {batch_size: 1, grad_accum: 16}\n")
    assert not any("per GPU" in w for w in render("recipes/mine.yaml", write=False).warnings)
    with pytest.raises(FactoryKitError, match=r"nodes.gpu.*unknown GPU `a1000`"):
        render("recipes/tcm-lora.yaml", ["nodes.gpu=a1000"], write=False)


def test_full_fine_tuning_a_7b_on_one_gpu_warns_but_not_a_small_model_or_zero3(registry_project):
    """Replaces the old `warns` rule of profiles.yaml (full and over 4B on one GPU) with the planner."""
    out = render("recipes/tcm-lora.yaml", ["method=full"], write=False)
    [warning] = [w for w in out.warnings if "per GPU" in w]
    assert "A100 80GB" in warning and "`hardware: ds-z3`" in warning
    assert not any("per GPU" in w for w in render("recipes/tcm-lora.yaml", ["method=full",
                   "model=Qwen/Qwen2.5-1.5B-Instruct"], write=False).warnings)
    assert not any("per GPU" in w for w in render("recipes/tcm-lora.yaml", ["method=full", "hardware=ds-z3",
                   "nodes.gpus_per_node=8"], write=False).warnings)


def test_plan_command_prints_the_table_in_80_columns(registry_project):
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "tcm-lora", "--gpu", "rtx4090"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(result.output.split())
    for part in ("weights", "gradients", "optimizer", "activations", "logits", "overhead", "total"):
        assert part in text
    assert "does not fit RTX 4090 24GB" in text and "tokens per optimizer step: 32,768" in text
    assert "cheapest fix: set `train.batch_size: 1`, `train.grad_accum: 16`" in text
    fits = runner.invoke(main, ["plan", "tcm-qlora", "--gpu-mem", "24"])
    assert fits.exit_code == 0 and "fits 24 GB GPU" in fits.output
    eight = runner.invoke(main, ["plan", "tcm-full-z3", "--gpus", "2"], env={"COLUMNS": "80"})
    assert "2 GPUs" in eight.output and "ZeRO-3 over 2 GPUs" in eight.output
    bad = runner.invoke(main, ["plan", "tcm-lora", "--gpu", "tpu"])
    assert bad.exit_code != 0 and "unknown GPU `tpu`" in bad.output and "Traceback" not in bad.output


def test_catalog_shapes_agree_with_the_model_catalogs_sizes():
    """Each architecture row (typed from the hub's config.json) gives the parameter count models.yaml
    lists for that family and size, within 2%: a mistyped hidden size or layer count fails here."""
    families = catalog.families()
    checked = 0
    for family, rows in P.architectures().items():
        assert family in families, f"architectures.yaml names unknown family {family}"
        for tag, shape in rows.items():
            listed = families[family].params_b.get(tag)
            if listed:
                assert shape.params / 1e9 == pytest.approx(listed, rel=0.02), (family, tag)
                checked += 1
    assert checked >= 30


def test_a_catalog_folder_adds_a_gpu_and_a_broken_row_fails_naming_it(tmp_path, monkeypatch):
    (tmp_path / "gpus.yaml").write_text("gpus:\n  mi300x: {name: MI300X 192GB, memory_gb: 191.5}\n")
    monkeypatch.setenv(catalog.CATALOG_ENV, str(tmp_path))
    assert P.find_gpu("MI300X").memory_gb == 191.5
    (tmp_path / "gpus.yaml").write_text("gpus:\n  mi300x: {name: MI300X}\n")
    with pytest.raises(FactoryKitError, match=r"gpus.yaml: gpus.mi300x needs `name` and `memory_gb`"):
        P.gpus()
    (tmp_path / "architectures.yaml").write_text("architectures:\n  qwen2.5:\n    7b: {hiden: 3584}\n")
    with pytest.raises(FactoryKitError, match=r"architectures.qwen2.5.7b: unknown key `hiden`"):
        P.architectures()
    (tmp_path / "memory.yaml").write_text("fixes: [micro_batch]\n")
    with pytest.raises(FactoryKitError, match=r"memory.yaml: needs `quant_bytes`"):
        P.constants()


def test_advice_names_the_packages_a_fix_needs_that_are_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("liger_kernel", "bitsandbytes") else real(name, *a))
    assert P._missing_packages({"llamafactory.enable_liger_kernel": True, "method": "qlora", "quant.bits": 4}) \
        == ["liger-kernel", "bitsandbytes"]
    assert P._missing_packages({"train.batch_size": 1, "train.grad_accum": 16}) == []
