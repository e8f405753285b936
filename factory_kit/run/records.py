"""Runs: train, export, chat and serve a rendered recipe through llamafactory-cli.

Each run re-renders (so every launch is checked first), shells out with the rendered
file, and records ``run.json`` next to its outputs: recipe hash, dataset hashes, package
versions, git commit, command, start/end and exit code, so any result can be traced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from factory_kit.run import launch
from factory_kit.core import paths
from factory_kit.data import registry
from factory_kit.core.errors import FactoryKitError
from factory_kit.recipe.render import Rendered, render

RESULT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin",
                "model.safetensors.index.json", "trainer_state.json")
TRACKED_PACKAGES = ("factory-kit", "llamafactory", "torch", "transformers", "peft", "trl", "datasets", "accelerate",
                    "lm_eval")


@dataclass
class TrainResult:
    rendered: Rendered
    output_dir: Path
    losses: list[tuple[int, float]]
    eval_losses: list[tuple[int, float]]
    seconds: float
    run_json: Path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def dataset_hashes(rendered: Rendered, project: Path) -> dict[str, str]:
    reg_dir = project / rendered.context["dataset_dir"]
    entries = registry.load(reg_dir)
    out = {}
    for name in [*rendered.recipe.data["datasets"], *rendered.recipe.data["eval_datasets"]]:
        file_name = entries.get(name, {}).get("file_name")
        path = reg_dir / file_name if file_name else None
        if path and path.is_file():
            out[name] = _sha256(path)
    return out


def write_run_json(path: Path, rendered: Rendered | None, project: Path, command: list[str],
                   started: float, ended: float, exit_code: int, extra: dict[str, Any] | None = None) -> Path:
    """Record what ran (train, eval...): enough hashes and versions to trace or repeat it."""
    record: dict[str, Any] = {}
    if rendered is not None:
        recipe_text = "".join(p.read_text(encoding="utf-8") for p in rendered.recipe.chain)
        record = {
            "recipe": str(rendered.recipe.path),
            "recipe_sha256": hashlib.sha256(recipe_text.encode()).hexdigest(),
            "rendered": {name: _sha256(p) for name, p in rendered.files.items()},
            "datasets": dataset_hashes(rendered, project),
        }
    record.update({
        "packages": package_versions(),
        "git_commit": git_commit(project),
        "command": command,
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "ended": datetime.fromtimestamp(ended, UTC).isoformat(),
        "seconds": round(ended - started, 2),
        "exit_code": exit_code,
        **(extra or {}),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_losses(output_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) and (step, eval_loss) pairs from LLaMA-Factory's trainer_log.jsonl."""
    log = Path(output_dir) / "trainer_log.jsonl"
    losses, eval_losses = [], []
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("loss") is not None:
                losses.append((row.get("current_steps", 0), float(row["loss"])))
            if row.get("eval_loss") is not None:
                eval_losses.append((row.get("current_steps", 0), float(row["eval_loss"])))
    return losses, eval_losses


def holds_results(output_dir: Path) -> bool:
    """A previous run left weights or checkpoints here (logs of a failed start do not count)."""
    if not output_dir.is_dir():
        return False
    return any(output_dir.glob("checkpoint-*")) or any(
        (output_dir / name).exists() for name in RESULT_FILES)


def last_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"),
                         key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    return checkpoints[-1] if checkpoints else None


def _launch_env(rendered: Rendered, node_rank: int | None) -> dict[str, str]:
    env = dict(rendered.env)
    if node_rank is not None:
        env["NODE_RANK"] = str(node_rank)
    return env


def keep_rendered(rendered: Rendered, output_dir: Path) -> Path:
    """Copy what this run uses into ``<output_dir>/rendered/``: later renders of the recipe must not
    change what a report says the run ran. Includes the merged recipe with each value's origin."""
    from factory_kit.recipe.views import format_recipe

    target = output_dir / "rendered"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, path in rendered.files.items():
        shutil.copyfile(path, target / name)
    (target / "recipe.yaml").write_text(format_recipe(rendered.recipe) + "\n", encoding="utf-8")
    return target


def train(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, overwrite: bool = False,
          resume: bool = False, node_rank: int | None = None, echo: bool = True) -> TrainResult:
    """Render, check, and run ``llamafactory-cli train``; never report a failed run as success."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    output_dir = project / rendered.context["output_dir"]
    extra: list[str] = []
    if holds_results(output_dir) and not rendered.context["overwrite"]:
        if resume:
            checkpoint = last_checkpoint(output_dir)
            if checkpoint is None:
                raise FactoryKitError(f"{output_dir}: --resume given but there is no checkpoint-* to resume from")
            extra.append(f"llamafactory.resume_from_checkpoint={checkpoint.relative_to(project)}")
        elif overwrite:
            extra.append("overwrite=true")
        else:
            raise FactoryKitError(
                f"{rendered.context['output_dir']} already holds a run; pass --overwrite to replace it, "
                "--resume to continue from its last checkpoint, or set `output_dir` in the recipe"
            )
    if extra:
        rendered = render(recipe_path, (*overrides, *extra), project=project)
    if rendered.context["overwrite"] and output_dir.exists() and not (node_rank or 0) > 0:
        # stale checkpoints/logs from an older run must not mix in (only the main node clears:
        # on a shared filesystem another node's clear would delete the main node's run)
        shutil.rmtree(output_dir)
    train_yaml = rendered.files["train.yaml"]
    output_dir.mkdir(parents=True, exist_ok=True)
    keep_rendered(rendered, output_dir)
    command = [launch.executable("llamafactory-cli"), "train", str(train_yaml.relative_to(project))]
    started = time.time()
    exit_code = 1
    try:
        launch.llamafactory("train", train_yaml.relative_to(project), cwd=project,
                            env=_launch_env(rendered, node_rank), log_path=output_dir / "factory-kit.log",
                            echo=echo)
        exit_code = 0
    finally:
        run_json = write_run_json(output_dir / "run.json", rendered, project, command, started, time.time(),
                                  exit_code, {"kind": "train"})
    losses, eval_losses = read_losses(output_dir)
    if not losses and not (node_rank or 0) > 0:  # only the main node writes trainer_log.jsonl
        raise FactoryKitError(f"{output_dir}: training exited 0 but logged no loss (trainer_log.jsonl is empty)")
    return TrainResult(rendered, output_dir, losses, eval_losses, time.time() - started, run_json)


def export(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, echo: bool = True) -> Path:
    """Merge the adapter into the base model with ``llamafactory-cli export``; returns the export dir."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    ctx = rendered.context
    trained = project / ctx["output_dir"]
    if not (trained / "adapter_config.json").exists() and not (trained / "config.json").exists():
        raise FactoryKitError(f"{ctx['output_dir']}: no trained model here yet; run `factory-kit train {recipe_path}` first")
    export_dir = project / ctx["export"]["dir"]
    launch.llamafactory("export", rendered.files["export.yaml"].relative_to(project), cwd=project,
                        log_path=trained / "factory-kit.log", echo=echo)
    if not (export_dir / "config.json").exists():
        raise FactoryKitError(f"llamafactory-cli export exited 0 but wrote no model to {export_dir}")
    return export_dir


def trained_model_dir(rendered: Rendered, project: Path, *, merged: bool = False, hint: str = "") -> Path:
    """The folder the recipe's training (or, with ``merged``, its export) wrote: the adapter, the
    full model, or the merged model; a clear error when it is not there yet."""
    ctx, recipe = rendered.context, rendered.recipe.path
    if merged:
        if not ctx["adapter"]:
            raise FactoryKitError(f"{recipe}: --merged is for adapter methods (lora/qlora/dora); "
                                  f"method {ctx['method']} already trains the whole model")
        if not (project / ctx["export"]["dir"] / "config.json").is_file():
            raise FactoryKitError(f"{ctx['export']['dir']}: no merged model yet; run `factory-kit export {recipe}` first")
        return project / ctx["export"]["dir"]
    marker = "adapter_config.json" if ctx["adapter"] else "config.json"
    if not (project / ctx["output_dir"] / marker).is_file():
        raise FactoryKitError(f"{ctx['output_dir']}: no trained model ({marker}) yet; "
                              f"run `factory-kit train {recipe}` first{hint}")
    return project / ctx["output_dir"]


def inference_config(rendered: Rendered, project: Path, *, merged: bool = False) -> Path:
    """The infer YAML for chat/serve, after checking that the model it points to exists."""
    trained_model_dir(rendered, project, merged=merged)
    return rendered.files["infer-merged.yaml" if merged else "infer.yaml"].relative_to(project)


def ask(recipe_path: str | Path, question: str, overrides: tuple[str, ...] = (), *, merged: bool = False,
        echo: bool = False) -> str:
    """One question through ``llamafactory-cli chat``; returns the answer text."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    config = inference_config(rendered, project, merged=merged)
    result = launch.llamafactory("chat", config, cwd=project, echo=echo,
                                 input_text=question.replace("\n", " ") + "\nexit\n")
    text = "\n".join(result.tail)
    if "Assistant:" not in text:
        raise FactoryKitError(f"llamafactory-cli chat gave no answer: {launch.last_error_line(result.tail)}")
    answer = text.split("Assistant:", 1)[1]
    answer = answer.split("\nUser:", 1)[0]
    return answer.strip()


def serve(recipe_path: str | Path, overrides: tuple[str, ...] = (), *, port: int = 8000, merged: bool = False) -> None:
    """Serve the model on an OpenAI-compatible endpoint (``llamafactory-cli api``) until stopped."""
    project = paths.project_dir()
    rendered = render(recipe_path, overrides, project=project)
    config = inference_config(rendered, project, merged=merged)
    launch.llamafactory("api", config, cwd=project,
                        env={"API_PORT": str(port), "API_HOST": os.environ.get("API_HOST", "127.0.0.1")})
