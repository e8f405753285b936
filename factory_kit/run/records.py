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
    exit code and error, an interrupted one (Ctrl-C: exit 130; SIGTERM/SIGHUP: 128 + signal) as
    ``status: interrupted``. The block may add to the yielded ``extra`` (results, say)."""
    started, exit_code, status = time.time(), 1, "failed"
    try:
        yield extra
        exit_code, status = 0, "succeeded"
    except FactoryKitError as exc:
        exit_code = exc.exit_code
        extra["error"] = str(exc)
        raise
    except KeyboardInterrupt:
        exit_code, status = 130, "interrupted"
        extra["error"] = "interrupted (Ctrl-C)"
        raise
    except SystemExit as exc:  # launch's SIGTERM/SIGHUP handler stops the child, then exits 128 + signal
        code = exc.code if isinstance(exc.code, int) else 1
        exit_code, status = code, "interrupted" if code > 128 else "failed"
        extra["error"] = f"stopped by signal {code - 128}" if code > 128 else f"exited {code}"
        raise
    finally:
        write_run_json(path, rendered, project, command, started, time.time(), exit_code,
                       {"status": status, **extra}, history=history)


def status_of(record: dict[str, Any]) -> str:
    """succeeded | failed | interrupted, also for records written before run.json had a status."""
    if record.get("status"):
        return str(record["status"])
    return "succeeded" if record.get("exit_code") == 0 else "failed"


# ---------------------------------------------------------------------------------------------
# Which trained weights a result or a merged model belongs to. After `train --resume` (or a new
# run) the adapter changes; results scored and models merged from the old one must not pass
# for the new one's.

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors",
                "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
MERGED_MARKER = "factory-kit-merged-from.json"  # written into the export folder by `factory-kit export`
HASH_LIMIT = 2 << 30  # bigger weight files (full models) are known by size and time, not hashed


def weights_identity(folder: str | Path) -> dict[str, Any] | None:
    """The trained weights in ``folder`` (an adapter, or a full model): file, sha256, size and time.
    A sharded model is known by its index and each shard's size and time. None: no weights there."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            break
    else:
        return None
    stat = path.stat()
    identity: dict[str, Any] = {"file": name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                "mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat()}
    if name.endswith(".index.json"):
        digest = hashlib.sha256(path.read_bytes())
        for shard in sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p != path):
            shard_stat = shard.stat()
            digest.update(f"{shard.name}:{shard_stat.st_size}:{shard_stat.st_mtime_ns}".encode())
        identity["sha256"] = digest.hexdigest()
    else:
        identity["sha256"] = _sha256(path) if stat.st_size <= HASH_LIMIT else None
    return identity


def same_weights(recorded: dict[str, Any] | None, folder: str | Path) -> bool | None:
    """Whether ``folder`` still holds the weights ``recorded`` (by weights_identity); None when
    nothing was recorded or the folder has no weights. Same file, size and time: the same, without
    hashing; else the hashes decide (a copy keeps its hash but not its time)."""
    if not recorded:
        return None
    path = Path(folder) / str(recorded.get("file", ""))
    if not path.is_file():
        return None if weights_identity(folder) is None else False
    stat = path.stat()
    if stat.st_size == recorded.get("size") and stat.st_mtime_ns == recorded.get("mtime_ns"):
        return True
    if stat.st_size != recorded.get("size"):
        return False
    current = weights_identity(folder)
    return bool(current and recorded.get("sha256") and current["sha256"] == recorded["sha256"])


def write_merged_marker(export_dir: Path, trained_dir: Path) -> Path:
    """Say in the merged model's folder which adapter it was merged from (see merged_is_stale)."""
    return io.write_json(Path(export_dir) / MERGED_MARKER,
                         {"adapter_dir": str(trained_dir), "adapter": weights_identity(trained_dir),
                          "exported": datetime.now(UTC).isoformat()})


def merged_from(export_dir: Path) -> dict[str, Any] | None:
    """The adapter identity a merged model records (None for a model merged without factory-kit's marker)."""
    try:
        marker = json.loads((Path(export_dir) / MERGED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker.get("adapter") if isinstance(marker, dict) else None


def merged_is_stale(export_dir: Path, trained_dir: Path) -> bool:
    """True when the merged model in ``export_dir`` was not merged from the adapter now in
    ``trained_dir`` (its marker names other weights; without a marker: it is older than them)."""
    recorded = merged_from(export_dir)
    if recorded is not None:
        return same_weights(recorded, trained_dir) is False
    current = weights_identity(trained_dir)
    config = Path(export_dir) / "config.json"
    return bool(current and config.is_file() and config.stat().st_mtime_ns < current["mtime_ns"])


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
