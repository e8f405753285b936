"""`factory-kit train`: render, check, and run ``llamafactory-cli train``, with the output-folder
policy (refuse to mix runs; --overwrite replaces, --resume continues from the last checkpoint)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.checks import check_launch
from factory_kit.recipe.render import Rendered, render
from factory_kit.run import launch, records, tokcache

RESULT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin",
                "model.safetensors.index.json", "trainer_state.json")


@dataclass
class TrainResult:
    rendered: Rendered
    output_dir: Path
    losses: list[tuple[int, float]]
    eval_losses: list[tuple[int, float]]
    seconds: float
    run_json: Path


def holds_results(output_dir: Path) -> bool:
    """A previous run left weights or checkpoints here (logs of a failed start do not count)."""
    if not output_dir.is_dir():
        return False
    return any(output_dir.glob("checkpoint-*")) or any(
        (output_dir / name).exists() for name in RESULT_FILES)


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint: the Trainer writes trainer_state.json last, so a checkpoint
    cut off by Ctrl-C (or a crash) while it was being saved is passed over."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"),
                         key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    for checkpoint in reversed(checkpoints):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return checkpoint
    return None


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (or SIGTERM/SIGHUP): the message says how to go on from here;
    ``exit_code`` is 130 for Ctrl-C, 128 + the signal otherwise."""

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resume_hint(recipe: str | Path, output_dir: Path, project: Path) -> str:
    """How to go on after an interrupted run: --resume when a complete checkpoint was saved."""
    shown = paths.relative(output_dir, project)
    checkpoint = last_checkpoint(output_dir)
    if checkpoint is not None:
        return (f"{shown} keeps {checkpoint.name}; continue with `factory-kit train {recipe} --resume`")
    return (f"no checkpoint was saved yet in {shown} (train.save_steps sets how often); start again with "
            f"`factory-kit train {recipe} --overwrite`")


def previous_dir(output_dir: Path) -> Path:
    """Where an overwritten run waits until the run that replaces it completes."""
    return output_dir.with_name(f".{output_dir.name}.previous")


def _set_aside(output_dir: Path) -> Path:
    """Move the older run out of the way (one rename, no copy); an even older one set aside by an
    interrupted overwrite goes now (what is in output_dir is newer than it)."""
    previous = previous_dir(output_dir)
    if previous.exists():
        shutil.rmtree(previous)
    output_dir.rename(previous)
    return previous


def _after_stop(recipe: str | Path, output_dir: Path, previous: Path | None, project: Path) -> str:
    """An interrupted overwrite: with no checkpoint of its own yet, the older run is put back as it
    was; with one, both are kept (this one resumable, the older one beside it)."""
    if previous is not None and last_checkpoint(output_dir) is None:
        shutil.rmtree(output_dir, ignore_errors=True)
        previous.rename(output_dir)
        return f"{paths.relative(output_dir, project)} is back as it was before this run (nothing changed)"
    hint = resume_hint(recipe, output_dir, project)
    if previous is not None:
        hint += f"; the run it replaces is kept in {paths.relative(previous, project)} until one completes"
    return hint


def _policy_overrides(rendered: Rendered, output_dir: Path, project: Path, *, overwrite: bool,
                      resume: bool) -> list[str]:
    """What an output folder that already holds a run needs: resume from its checkpoint, replace it,
    or a clear refusal (never train into it and mix two runs)."""
    if resume and overwrite:
        raise FactoryKitError("--resume continues the run in output_dir and --overwrite replaces it: pass one")
    if resume and output_dir.is_dir():  # wins over the recipe's `overwrite: true`: asked for on the command line
        checkpoint = last_checkpoint(output_dir)
        if checkpoint is None:
            raise FactoryKitError(f"{output_dir}: --resume given but there is no checkpoint to resume from (no "
                                  "complete checkpoint-*); start again with --overwrite")
        return ["overwrite=false", f"llamafactory.resume_from_checkpoint={checkpoint.relative_to(project)}"]
    if not holds_results(output_dir) or rendered.context["overwrite"]:
        return []
    if overwrite:
        return ["overwrite=true"]
    raise FactoryKitError(
        f"{rendered.context['output_dir']} already holds a run; pass --overwrite to replace it, "
        "--resume to continue from its last checkpoint, or set `output_dir` in the recipe"
    )


def node_commands(recipe_path: str | Path, overrides: tuple[str, ...] = (), flags: tuple[str, ...] = ()) -> list[str]:
    """The exact shell command for every node of the recipe's hardware, one line each: the launch
    environment (NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT for `multi-node`) and the
    same `factory-kit train` call (with --node-rank on a multi-node recipe). Run line N on node N; every
    node needs the same project (recipe, data, model path). One line for single-node hardware."""
    rendered = render(recipe_path, overrides, project=paths.project_dir(), write=False)
    env = rendered.env
    base = ["factory-kit", "train", str(recipe_path), *(a for s in overrides for a in ("--set", s)), *flags]
    ranks = range(int(rendered.context["nodes"]["count"])) if "NNODES" in env else [None]
    lines = []
    for rank in ranks:
        node_env = dict(env) if rank is None else {**env, "NODE_RANK": str(rank)}
        command = base if rank is None else [*base, "--node-rank", str(rank)]
        lines.append(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in node_env.items()), shlex.join(command)]))
    return lines


# Tokenising workers when the recipe leaves `train.workers` unset: one per CPU, at most 16, but one for
# small data. Measured (LLaMA-Factory 0.9.5, tiny BPE tokenizer, 20k alpaca rows = 10.5 MB, cutoff 256, a
# shared 2-core box): 1 worker formats in 1 s and tokenises in 20 s (~1,000 rows/s); 2 workers format in
# 5 s (the pool's start) and tokenise in 20 s (no core was free). A pool costs ~4 s, so it can pay only
# from ~8k rows (~4 MB) even with idle cores; 16 is LLaMA-Factory's own examples' setting. The tokenised
# cache makes this a first-run cost only (the second run loaded the same 20k rows in 0.05 s).
SMALL_DATA_BYTES = 4 << 20
MAX_WORKERS = 16


def machine_workers(data_bytes: int, cpus: int | None = None) -> int:
    """Preprocessing workers for this machine and this much data."""
    if data_bytes < SMALL_DATA_BYTES:
        return 1
    return max(1, min(cpus or os.cpu_count() or 1, MAX_WORKERS))


def _speed_overrides(rendered: Rendered, project: Path, *, cache: bool = True) -> tuple[list[str], Path | None]:
    """Settings `train` sizes to this machine and this data (not `render`: rendered files stay the same on
    every machine): preprocessing workers (unless the recipe sets `train.workers`), and the tokenised-data
    cache (run/tokcache.py: the first run saves it, later runs with the same data, tokenizer and data keys
    skip preprocessing; not with `train.tokenized_cache: false` or a raw `tokenized_path`)."""
    config = rendered.configs["train.yaml"]
    sets: list[str] = []
    if rendered.recipe.origins.get("train.workers", "default") == "default":
        sets.append(f"train.workers={machine_workers(tokcache.data_bytes(config, project))}")
    if not cache or not rendered.context["train"].get("tokenized_cache", True) or "tokenized_path" in config:
        return sets, None
    key = tokcache.cache_key(config, project)
    if key is None:
        return sets, None
    rel, _ = tokcache.prepare(key, project)
    return [*sets, f"llamafactory.tokenized_path={rel}"], project / rel


def train(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, overwrite: bool = False,
          resume: bool = False, node_rank: int | None = None, echo: bool = True,
          on_warning: Callable[[str], None] | None = None) -> TrainResult:
    """Render, check, and run ``llamafactory-cli train``; never report a failed run as success.
    ``on_warning`` gets each recipe warning (e.g. data not decontaminated) before the launch."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    output_dir = project / rendered.context["output_dir"]
    extra = _policy_overrides(rendered, output_dir, project, overwrite=overwrite, resume=resume)
    if extra:
        rendered = render(recipe_path, (*overrides, *extra), project=project)
    main_node = not (node_rank or 0) > 0
    # only the main node uses the tokenised cache: another one preprocesses for itself (and must not remove
    # the main node's unsealed cache folder on a shared filesystem)
    speed, cache = _speed_overrides(rendered, project, cache=main_node)
    if speed:
        rendered = render(recipe_path, (*overrides, *extra, *speed), project=project)
    check_launch(rendered.context, project)  # packages and a trained reward model, before any launch
    for message in rendered.warnings if on_warning is not None else ():
        on_warning(message)
    previous = None
    if rendered.context["overwrite"] and output_dir.exists() and main_node:
        # stale checkpoints/logs from an older run must not mix in, but the older run is only set
        # aside until this one completes (only the main node does it: on a shared filesystem
        # another node's move would take the main node's run away)
        previous = _set_aside(output_dir)
    train_yaml = rendered.files["train.yaml"].relative_to(project)
    output_dir.mkdir(parents=True, exist_ok=True)
    records.keep_rendered(rendered, output_dir)
    env = dict(rendered.env)
    if node_rank is not None:
        env["NODE_RANK"] = str(node_rank)
    command = [launch.executable("llamafactory-cli"), "train", str(train_yaml)]
    started = time.time()
    try:
        with records.recording(output_dir / "run.json", rendered, project, command, {"kind": "train"}):
            launch.llamafactory("train", train_yaml, cwd=project, env=env, log_path=output_dir / "factory-kit.log",
                                echo=echo)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {_after_stop(recipe_path, output_dir, previous, project)}") from None
    except SystemExit as exc:  # SIGTERM/SIGHUP (launch stopped the child): the same record, the same hint
        if not isinstance(exc.code, int) or exc.code <= 128:
            raise
        raise Interrupted(f"stopped by signal {exc.code - 128}: "
                          f"{_after_stop(recipe_path, output_dir, previous, project)}", exc.code) from None
    except FactoryKitError as exc:
        if previous is not None:
            exc.args = (f"{exc.args[0]} (the previous run is kept in {paths.relative(previous, project)})",)
        raise
    finally:
        if cache is not None:  # saved by LLaMA-Factory (even if training failed after it): reusable from now on
            tokcache.seal(cache, output_dir / "factory-kit.log")
    losses, eval_losses = records.read_losses(output_dir)
    if not losses and main_node:  # only the main node writes trainer_log.jsonl
        raise FactoryKitError(f"{output_dir}: training exited 0 but logged no loss (trainer_log.jsonl is empty)")
    if main_node:  # this run (or the resumed one) is complete: the run it replaced goes now
        shutil.rmtree(previous_dir(output_dir), ignore_errors=True)
    return TrainResult(rendered, output_dir, losses, eval_losses, time.time() - started, output_dir / "run.json")
