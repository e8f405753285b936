"""Rendered train configs in LLaMA-Factory's web UI (LlamaBoard) saved-arguments format.

The web UI cannot read a CLI train YAML. Its "Save arguments" / "Load arguments" buttons
write and read ``llamaboard_config/<name>.yaml``: a flat map from UI element ids
(``top.template``, ``train.learning_rate``...) to widget values, which
``Runner._parse_train_args`` (llamafactory/webui/runner.py) turns back into CLI arguments.
This module writes that format from a rendered ``build/<recipe>/train.yaml``, so that
loading the file in the UI and pressing Start trains what ``llamafactory-cli train`` would.

Rules (LLaMA-Factory 0.9.5, gradio 5.50; see docs/webui.md):

* Every field the UI saves is written (its default when the config says nothing), so
  loading a recipe never keeps a stale value from the previous one. ``top.lang`` and
  ``train.config_path`` are left out, as the UI itself does; ``top.model_path`` and
  ``train.output_dir`` are written so the file is self-contained.
* A key goes into a UI field only where the UI's own conversion gives back the same CLI
  value; everything else goes into ``train.extra_args`` (a JSON string), which the UI
  applies over its base arguments. Keys the UI always sets to the same value
  (``do_train``, ``trust_remote_code``...) are dropped when they agree.
* Values keep the widgets' types: text boxes hold strings (``"0.0001"``), sliders numbers,
  ``train.dataset`` a list, ``train.training_stage`` the UI's stage name.

No torch, gradio or llamafactory import here: ``render`` calls this on its hot path.
Model names for ``top.model_name`` are read from llamafactory/extras/constants.py as text.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import yaml

from factory_kit.core import io
from factory_kit.recipe import catalog

CONFIG_DIR = "llamaboard_config"  # llamafactory.webui.common.DEFAULT_CONFIG_DIR
CUSTOM_MODEL = "Custom"  # the UI's model-name choice for anything not in its list

# What the UI saves for a fresh page (every input of the Train tab and the top bar, as
# Runner._build_config_dict writes them, empty text boxes as ""). tests/run/test_webui.py
# checks this table against the installed UI's components.
UI_DEFAULTS: dict[str, Any] = {
    "top.booster": "auto",
    "top.checkpoint_path": [],
    "top.finetuning_type": "lora",
    "top.model_name": None,
    "top.quantization_bit": "none",
    "top.quantization_method": "bnb",
    "top.rope_scaling": "none",
    "top.template": "default",
    "train.additional_target": "",
    "train.apollo_rank": 16,
    "train.apollo_scale": 32.0,
    "train.apollo_target": "all",
    "train.apollo_update_interval": 200,
    "train.badam_mode": "layer",
    "train.badam_switch_interval": 50,
    "train.badam_switch_mode": "ascending",
    "train.badam_update_ratio": 0.05,
    "train.batch_size": 2,
    "train.compute_type": "bf16",
    "train.create_new_adapter": False,
    "train.cutoff_len": 2048,
    "train.dataset": [],
    "train.dataset_dir": "data",
    "train.ds_offload": False,
    "train.ds_stage": "none",
    "train.enable_thinking": True,
    "train.extra_args": '{"optim": "adamw_torch"}',
    "train.freeze_extra_modules": "",
    "train.freeze_language_model": False,
    "train.freeze_multi_modal_projector": True,
    "train.freeze_trainable_layers": 2,
    "train.freeze_trainable_modules": "all",
    "train.freeze_vision_tower": True,
    "train.galore_rank": 16,
    "train.galore_scale": 2.0,
    "train.galore_target": "all",
    "train.galore_update_interval": 200,
    "train.gradient_accumulation_steps": 8,
    "train.hub_private_repo": False,
    "train.image_max_pixels": "768*768",
    "train.image_min_pixels": "32*32",
    "train.learning_rate": "5e-5",
    "train.logging_steps": 5,
    "train.lora_alpha": 16,
    "train.lora_dropout": 0,
    "train.lora_rank": 8,
    "train.lora_target": "",
    "train.loraplus_lr_ratio": 0,
    "train.lr_scheduler_type": "cosine",
    "train.mask_history": False,
    "train.max_grad_norm": "1.0",
    "train.max_samples": "100000",
    "train.neat_packing": False,
    "train.neftune_alpha": 0,
    "train.num_train_epochs": "3.0",
    "train.packing": False,
    "train.ppo_score_norm": False,
    "train.ppo_whiten_rewards": False,
    "train.pref_beta": 0.1,
    "train.pref_ftx": 0,
    "train.pref_loss": "sigmoid",
    "train.project": "huggingface",
    "train.report_to": "none",
    "train.resize_vocab": False,
    "train.reward_model": [],
    "train.save_steps": 100,
    "train.swanlab_api_key": "",
    "train.swanlab_mode": "cloud",
    "train.swanlab_project": "llamafactory",
    "train.swanlab_run_name": "",
    "train.swanlab_workspace": "",
    "train.trackio_space_id": "trackio",
    "train.train_on_prompt": False,
    "train.training_stage": "Supervised Fine-Tuning",
    "train.use_apollo": False,
    "train.use_badam": False,
    "train.use_dora": False,
    "train.use_galore": False,
    "train.use_llama_pro": False,
    "train.use_pissa": False,
    "train.use_rslora": False,
    "train.use_swanlab": False,
    "train.val_size": 0,
    "train.video_max_pixels": "256*256",
    "train.video_min_pixels": "16*16",
    "train.warmup_steps": 0,
}

# Slider bounds (components/train.py): a value outside them is refused by gradio.
UI_SLIDERS: dict[str, tuple[float, float]] = {
    "train.cutoff_len": (4, 131072),
    "train.batch_size": (1, 1024),
    "train.gradient_accumulation_steps": (1, 1024),
    "train.val_size": (0, 1),
    "train.logging_steps": (1, 1000),
    "train.save_steps": (10, 5000),
    "train.warmup_steps": (0, 5000),
    "train.neftune_alpha": (0, 10),
    "train.freeze_trainable_layers": (-128, 128),
    "train.lora_rank": (1, 1024),
    "train.lora_alpha": (1, 2048),
    "train.lora_dropout": (0, 1),
    "train.loraplus_lr_ratio": (0, 64),
    "train.pref_beta": (0, 1),
    "train.pref_ftx": (0, 10),
}

# Keys Runner._parse_train_args always sets to these values: dropped when the config agrees.
UI_FIXED: dict[str, Any] = {
    "do_train": True,
    "trust_remote_code": True,
    "ddp_timeout": 180000000,
    "plot_loss": True,
    "include_num_input_tokens_seen": True,
}

UI_PEFT = {"lora", "oft"}  # llamafactory.extras.constants.PEFT_METHODS
UI_QUANT_METHODS = ("bnb", "hqq", "eetq")
# The UI has no "unlimited" for max_samples (it always passes int(field)): use a bound no
# fine-tuning set reaches instead of its default 100000, which would silently truncate.
UNLIMITED_SAMPLES = "100000000"


def _float_text(value: Any) -> str:
    """A number as the UI's text boxes hold it; float(text) gives the value back exactly."""
    return repr(float(value))


def _in_range(key: str, value: Any) -> bool:
    low, high = UI_SLIDERS[key]
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _plain(value: Any) -> Any:
    """Builtin types only (a ruamel-loaded config holds str/float/list subclasses)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _split_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


@functools.lru_cache(maxsize=1)
def ui_model_names() -> dict[str, str]:
    """Hub id (lower case) -> the UI's model name, read from LLaMA-Factory's constants.py."""
    try:
        spec = importlib.util.find_spec("llamafactory")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return {}
    constants = Path(list(spec.submodule_search_locations)[0]) / "extras" / "constants.py"
    try:
        text = constants.read_text(encoding="utf-8")
    except OSError:
        return {}
    names: dict[str, str] = {}
    pattern = r'"([^"\n]+)":\s*\{\s*DownloadSource\.DEFAULT:\s*"([^"\n]+)"'
    for name, hub_id in re.findall(pattern, text):
        names.setdefault(hub_id.lower(), name)
    return names


def ui_stages() -> dict[str, str]:
    """CLI stage -> the UI's name for it (llamafactory.extras.constants.TRAINING_STAGES, inverted):
    each stage row's ``webui.training_stage`` in catalog/profiles.yaml."""
    return {name: row.webui["training_stage"] for name, row in catalog.stages().items()
            if row.webui.get("training_stage")}


def ui_model_name(model: str) -> str:
    """The UI's name for a hub id (``Qwen/Qwen2.5-7B-Instruct`` -> ``Qwen2.5-7B-Instruct``)."""
    return ui_model_names().get(str(model).strip().lower(), CUSTOM_MODEL)


def llamaboard_config(train_config: dict, context: dict) -> dict:
    """The web UI's saved-arguments dict for a rendered train config (see module doc)."""
    rest = _plain(dict(train_config))
    train_config = rest.copy()
    ui: dict[str, Any] = dict(UI_DEFAULTS)

    def take(key: str, default: Any = None) -> Any:
        return rest.pop(key, default)

    # --- top bar
    model = take("model_name_or_path", context.get("model"))
    finetuning_type = take("finetuning_type", "lora")
    stage = take("stage", context.get("stage", "sft"))
    ui["top.model_name"] = ui_model_name(model) if model else CUSTOM_MODEL
    ui["top.model_path"] = str(model) if model else ""
    ui["top.finetuning_type"] = finetuning_type
    ui["top.checkpoint_path"] = [] if finetuning_type in UI_PEFT else None
    ui["top.template"] = take("template", context.get("template")) or "default"
    rope = take("rope_scaling")
    if rope in ("linear", "dynamic", "yarn", "llama3"):
        ui["top.rope_scaling"] = rope
    elif rope is not None:
        rest["rope_scaling"] = rope
    _booster(ui, rest)
    bits = take("quantization_bit")
    if bits is not None:
        ui["top.quantization_bit"] = str(int(bits))
        ui["top.quantization_method"] = take("quantization_method", "bnb")
        # The UI always sets double_quantization=True (off only on Ascend NPUs): a config
        # asking for False cannot be expressed; the key is dropped either way.
        take("double_quantization")

    # --- train tab: stage and data
    stages = ui_stages()
    if stage not in stages:
        raise ValueError(f"stage {stage!r} has no web UI stage (known: {', '.join(stages)})")
    ui["train.training_stage"] = stages[stage]
    row = catalog.stages()[stage]  # what the table says the UI shows for this stage
    ui["train.dataset_dir"] = str(take("dataset_dir", "data"))
    ui["train.dataset"] = _split_list(take("dataset"))

    # --- train tab: numbers the UI keeps in text boxes
    ui["train.learning_rate"] = _float_text(take("learning_rate", 5e-5))
    ui["train.num_train_epochs"] = _float_text(take("num_train_epochs", 3.0))
    ui["train.max_grad_norm"] = _float_text(take("max_grad_norm", 1.0))
    max_samples = take("max_samples")
    ui["train.max_samples"] = UNLIMITED_SAMPLES if max_samples is None else str(int(max_samples))
    ui["train.compute_type"] = _compute_type(rest)
    ui["train.lr_scheduler_type"] = take("lr_scheduler_type", "linear")

    # --- sliders of the base arguments: out of range -> field at its bound, value in extra_args
    for key, cli_key, default in (
        ("train.cutoff_len", "cutoff_len", 2048),
        ("train.batch_size", "per_device_train_batch_size", 8),
        ("train.gradient_accumulation_steps", "gradient_accumulation_steps", 1),
        ("train.logging_steps", "logging_steps", 500),
        ("train.save_steps", "save_steps", 500),
        ("train.warmup_steps", "warmup_steps", 0),
        ("train.neftune_alpha", "neftune_noise_alpha", 0),
    ):
        value = take(cli_key, default)
        if value is None:
            value = 0 if key == "train.neftune_alpha" else default
        if _in_range(key, value):
            ui[key] = value
        else:
            low, high = UI_SLIDERS[key]
            ui[key] = min(max(value, low), high) if isinstance(value, (int, float)) else UI_DEFAULTS[key]
            rest[cli_key] = value

    # --- check boxes and plain choices
    neat = bool(take("neat_packing", False))
    packing = take("packing")
    ui["train.neat_packing"] = neat
    ui["train.packing"] = bool(packing) if packing is not None else bool(row.webui.get("packing"))
    for key in ("train_on_prompt", "mask_history", "resize_vocab", "use_llama_pro"):
        ui[f"train.{key}"] = bool(take(key, False))
    ui["train.enable_thinking"] = bool(take("enable_thinking", True))
    report_to = take("report_to", "none")
    if isinstance(report_to, str):
        ui["train.report_to"] = report_to
    else:
        ui["train.report_to"] = "none"
        rest["report_to"] = report_to
    output_dir = take("output_dir")
    if output_dir is not None:
        ui["train.output_dir"] = str(output_dir)

    # --- method blocks (applied by the UI after extra_args, so they must be fields)
    if finetuning_type == "freeze" or ui["train.use_llama_pro"]:
        layers = take("freeze_trainable_layers", 2)
        ui["train.freeze_trainable_layers"] = layers
    if finetuning_type == "freeze":
        modules = take("freeze_trainable_modules", "all")
        extra = take("freeze_extra_modules")
        ui["train.freeze_trainable_modules"] = ",".join(_split_list(modules)) or "all"
        ui["train.freeze_extra_modules"] = ",".join(_split_list(extra))
    if finetuning_type == "lora":
        rank = take("lora_rank", 8)
        alpha = take("lora_alpha")
        ui["train.lora_rank"] = rank
        ui["train.lora_alpha"] = alpha if alpha is not None else rank * 2  # LLaMA-Factory's default
        ui["train.lora_dropout"] = take("lora_dropout", 0.0)
        ui["train.loraplus_lr_ratio"] = take("loraplus_lr_ratio") or 0
        ui["train.create_new_adapter"] = bool(take("create_new_adapter", False))
        ui["train.use_rslora"] = bool(take("use_rslora", False))
        ui["train.use_dora"] = bool(take("use_dora", False))
        ui["train.use_pissa"] = bool(take("pissa_init", False))
        take("pissa_convert")  # the UI ties it to pissa_init
        ui["train.lora_target"] = ",".join(_split_list(take("lora_target", "all"))) or "all"
        ui["train.additional_target"] = ",".join(_split_list(take("additional_target")))
    # --- stage blocks (applied after extra_args too): the row's fields, keys the UI fixes, the reward model
    for key, default in (row.webui.get("fields") or {}).items():
        ui[f"train.{key}"] = take(key, default)
    for key, value in (row.webui.get("fixed") or {}).items():
        if key in rest and rest[key] == value:  # a different value stays in extra_args, where the UI overrides it
            del rest[key]
    if row.reward_model:
        _reward_model(ui, rest, finetuning_type)

    # --- evaluation: the val_size slider only where the UI's derived eval keys agree
    val_size = rest.get("val_size")
    save_steps = train_config.get("save_steps", 500)  # Hugging Face defaults where unset
    train_batch = train_config.get("per_device_train_batch_size", 8)
    if (
        isinstance(val_size, (int, float)) and 0 < val_size <= 1 and row.evaluates
        and rest.get("eval_strategy") == "steps"
        and rest.get("eval_steps") == save_steps
        and rest.get("per_device_eval_batch_size", 8) == train_batch
    ):
        ui["train.val_size"] = take("val_size")
        for key in ("eval_strategy", "eval_steps", "per_device_eval_batch_size"):
            take(key)

    # --- DeepSpeed: keep the rendered JSON (the UI's ds_stage would swap in its own file)
    # Everything left has no UI field: extra_args, which the UI applies over its base args.
    for key, value in UI_FIXED.items():
        if key in rest and rest[key] == value:
            del rest[key]
    ui["train.extra_args"] = json.dumps(rest, sort_keys=True, ensure_ascii=False, default=str)
    return ui


def _reward_model(ui: dict[str, Any], rest: dict[str, Any], finetuning_type: str) -> None:
    """train.reward_model: the UI joins its entries under saves/<model>/<method>/ unless an entry holds a
    path separator (webui/common.get_save_dir), so a folder is written with one; the UI derives
    reward_model_type from the method (lora -> lora, else full): a different type cannot be expressed
    and is left in extra_args (the UI overrides it)."""
    path = str(rest.pop("reward_model", "") or "")
    if path and "/" not in path:
        path = f"./{path}"
    ui["train.reward_model"] = ([path] if path else []) if finetuning_type in UI_PEFT else path
    kind = rest.pop("reward_model_type", "lora")
    if kind != ("lora" if finetuning_type == "lora" else "full"):
        rest["reward_model_type"] = kind


def _booster(ui: dict[str, Any], rest: dict[str, Any]) -> None:
    """top.booster is one choice; the UI derives flash_attn/use_unsloth/liger from it."""
    flash = rest.pop("flash_attn", None)
    unsloth = bool(rest.pop("use_unsloth", False))
    liger = bool(rest.pop("enable_liger_kernel", False))
    if flash == "fa2":
        ui["top.booster"] = "flashattn2"
    elif unsloth:
        ui["top.booster"] = "unsloth"
    elif liger:
        ui["top.booster"] = "liger_kernel"
    booster = ui["top.booster"]
    if flash not in (None, "auto") and booster != "flashattn2":
        rest["flash_attn"] = flash
    if booster == "flashattn2" and flash != "fa2":
        rest["flash_attn"] = flash or "auto"
    if unsloth and booster != "unsloth":
        rest["use_unsloth"] = True
    if liger and booster != "liger_kernel":
        rest["enable_liger_kernel"] = True


def _compute_type(rest: dict[str, Any]) -> str:
    bf16, fp16, pure = (bool(rest.pop(k, False)) for k in ("bf16", "fp16", "pure_bf16"))
    if pure:
        kind = "pure_bf16"
    elif bf16:
        kind = "bf16"
    elif fp16:
        kind = "fp16"
    else:
        kind = "fp32"
    # A config with two of them on is LLaMA-Factory's to refuse: keep the others as given.
    for key, on in (("pure_bf16", pure), ("bf16", bf16), ("fp16", fp16)):
        if on and key != kind:
            rest[key] = True
    return kind


def dump(config: dict, recipe_name: str) -> str:
    """The file text: a header naming the recipe, then the mapping, keys sorted."""
    body = yaml.safe_dump(config, sort_keys=True, allow_unicode=True, default_flow_style=False, width=1000)
    return (
        f"# LLaMA-Factory web UI arguments for recipe {recipe_name}, written by factory-kit render.\n"
        "# Load it in `factory-kit webui`: Train tab -> Config path -> Load arguments.\n"
        f"# Do not edit: change recipes/{recipe_name}.yaml and run `factory-kit render`.\n" + body
    )


def write_llamaboard_config(project: Path, recipe_name: str, train_config: dict, context: dict) -> Path:
    """Write ``<project>/llamaboard_config/<recipe_name>.yaml`` (deterministic; unchanged files untouched)."""
    config = llamaboard_config(train_config, {**context, "recipe_name": recipe_name})
    text = dump(config, recipe_name)
    path = Path(project) / CONFIG_DIR / f"{recipe_name}.yaml"
    io.write_if_changed(path, text)
    return path
