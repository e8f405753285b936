"""DeepSpeed configs checked by DeepSpeed's own config classes, before any GPU time is spent.

The rendered (or the recipe's own, `deepspeed_config:`) JSON goes through ``DeepSpeedConfig`` (its
pydantic models: ZeRO stage, offload devices, bucket sizes, unknown ZeRO keys; its batch and precision
assertions) with the world size the launch will have, no GPU and no process group needed. "auto"
values are filled the way transformers fills them from train.yaml; a fixed value that disagrees with
train.yaml is refused here, as the trainer would refuse it at launch. Importing deepspeed imports
torch (seconds), so this runs in `check` and `train`, never in `render`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import types
from typing import Any

from factory_kit.core.errors import FactoryKitError

# pydantic model (the ValidationError's title) -> the JSON section it reads
SECTIONS = {"DeepSpeedZeroConfig": "zero_optimization", "DeepSpeedFP16Config": "fp16",
            "DeepSpeedBF16Config": "bf16", "DeepSpeedMonitorConfig": "monitor", "DeepSpeedCommsConfig": "comms",
            "DeepSpeedActivationCheckpointingConfig": "activation_checkpointing"}


def trainer_values(train: dict[str, Any], world: int) -> dict[tuple[str, ...], Any]:
    """What transformers writes over "auto" (and insists on when a value is fixed), from train.yaml."""
    micro, accum = int(train.get("per_device_train_batch_size", 1)), int(train.get("gradient_accumulation_steps", 1))
    return {("train_micro_batch_size_per_gpu",): micro, ("gradient_accumulation_steps",): accum,
            ("train_batch_size",): micro * accum * world, ("gradient_clipping",): float(train.get("max_grad_norm", 1.0)),
            ("fp16", "enabled"): bool(train.get("fp16", False)), ("bf16", "enabled"): bool(train.get("bf16", False))}


def _drop_auto(node: Any) -> Any:
    """The remaining "auto" values (bucket sizes, optimizer settings: transformers fills them from the
    model) are left to DeepSpeed's defaults for the check."""
    if isinstance(node, dict):
        return {k: _drop_auto(v) for k, v in node.items() if v != "auto"}
    return node


def filled(config: dict[str, Any], train: dict[str, Any], world: int, source: str) -> dict[str, Any]:
    """``config`` with "auto" filled from train.yaml; a fixed value the trainer would reject fails."""
    out = copy.deepcopy(config)
    for path, value in trainer_values(train, world).items():
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node.get(part), dict) else None
            if node is None:
                break
        if node is None or path[-1] not in node:
            continue
        if node[path[-1]] == "auto":
            node[path[-1]] = value
        elif node[path[-1]] != value and path[-1] != "enabled":
            raise FactoryKitError(
                f"{source}: `{'.'.join(path)}: {json.dumps(node[path[-1]])}` disagrees with train.yaml ({value} for "
                f"{world} process(es)), and the trainer refuses a mismatch; write \"auto\" there")
    return _drop_auto(out)


def _deepspeed_config_class():
    """DeepSpeedConfig, imported quietly (deepspeed logs its accelerator choice at import)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import deepspeed.runtime.config as ds_config
    except Exception as exc:  # installed but broken (a CUDA/torch mismatch, say): say so, not a traceback
        raise FactoryKitError(f"deepspeed is installed but does not import ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]}); reinstall it with "
                              "`.venv/bin/pip install -e '.[deepspeed]'`") from None
    return ds_config


def check(config: dict[str, Any], train: dict[str, Any], world: int, source: str) -> None:
    """Run ``config`` through DeepSpeed's config classes for ``world`` processes; one line naming
    ``source`` and the key on failure."""
    import pydantic

    values = filled(config, train, world, source)
    ds_config = _deepspeed_config_class()
    saved = ds_config.dist  # DeepSpeedConfig asks torch.distributed for the world size: answer without one
    ds_config.dist = types.SimpleNamespace(get_rank=lambda: 0, get_world_size=lambda: world)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ds_config.DeepSpeedConfig(values)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        section = SECTIONS.get(exc.title, exc.title)
        key = ".".join([section, *(str(p) for p in first["loc"])])
        given = f" (got {json.dumps(first['input'])})" if "input" in first and not isinstance(first["input"], dict) else ""
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise FactoryKitError(f"{source}: `{key}`: {first['msg']}{given}{more} (DeepSpeed's config check)") from None
    except (AssertionError, ValueError, TypeError, KeyError, ds_config.DeepSpeedConfigError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise FactoryKitError(f"{source}: {message} (DeepSpeed's config check)") from None
    finally:
        ds_config.dist = saved


def world_size(env: dict[str, str]) -> int:
    """Processes the launch will start: NPROC_PER_NODE x NNODES from launch.env."""
    return int(env.get("NPROC_PER_NODE", 1)) * int(env.get("NNODES", 1))
