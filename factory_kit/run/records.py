"""Run records: what ran, traced well enough to repeat it.

Every run (train, eval...) writes ``run.json`` next to its outputs: recipe hash, dataset
hashes, package versions, git commit, command, start/end, exit code (and the error of a
failed run). Eval folders also keep ``runs.jsonl``, one line per run, so a later run does
not erase the record of an earlier one. Also here: the losses a run logged, and the copy
of the rendered files a run used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from factory_kit.core import io
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry
from factory_kit.recipe.render import Rendered

TRACKED_PACKAGES = ("factory-kit", "llamafactory", "torch", "transformers", "peft", "trl", "datasets", "accelerate",
                    "lm_eval")
HISTORY_NAME = "runs.jsonl"


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
                   started: float, ended: float, exit_code: int, extra: dict[str, Any] | None = None, *,
                   history: bool = False) -> Path:
    """Record what ran (train, eval...): enough hashes and versions to trace or repeat it.
    ``history``: also append the record to ``runs.jsonl`` beside it (run.json is the latest run)."""
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
    io.write_json(path, record)
    if history:
        with open(path.parent / HISTORY_NAME, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return path


@contextlib.contextmanager
def recording(path: Path, rendered: Rendered | None, project: Path, command: list[str],
              extra: dict[str, Any], *, history: bool = False) -> Iterator[dict[str, Any]]:
    """Write ``run.json`` when the block ends, success or not: a failed run is recorded with its
    exit code and error too. The block may add to the yielded ``extra`` (results, say)."""
    started, exit_code = time.time(), 1
    try:
        yield extra
        exit_code = 0
    except FactoryKitError as exc:
        exit_code = exc.exit_code
        extra["error"] = str(exc)
        raise
    finally:
        write_run_json(path, rendered, project, command, started, time.time(), exit_code, extra, history=history)


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


def keep_rendered(rendered: Rendered, output_dir: Path) -> Path:
    """Copy what this run uses into ``<output_dir>/rendered/``: later renders of the recipe must not
    change what a report says the run ran. Includes the merged recipe with each value's origin."""
    from factory_kit.recipe.views import format_recipe

    target = output_dir / "rendered"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name, path in rendered.files.items():
        shutil.copyfile(path, target / name)
    io.write_text(target / "recipe.yaml", format_recipe(rendered.recipe) + "\n")
    return target
