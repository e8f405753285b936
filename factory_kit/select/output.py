"""What ``data select`` writes: the selected dataset and its random control arm, registered in
the pool's own format, plus ``data/select/NAME/`` (stats.json, dropped.jsonl, histogram.png).

The rows are the pool's rows as stored (LLaMA-Factory already reads them), each with three
added fields LLaMA-Factory ignores: ``select_match`` (the best-matching eval item id),
``select_score`` (its cosine similarity) and ``select_arm`` (recall | random | control).
They are registered with the pool's dataset_info entry (same formatting/columns/tags), through
the registry's merge, and get a ``data/meta/NAME.json`` record like an import's (so recipe
checks that read import records, such as ``<think>`` data, see them too).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from factory_kit.core import io, paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import registry
from factory_kit.select.options import Options
from factory_kit.select.recall import Pick, Result
from factory_kit.select.sources import EvalItem, Pool

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONTROL_SUFFIX = "_random"
DROPPED_SHOWN = 20


def select_dir(project: Path, name: str) -> Path:
    return paths.data_dir(project) / "select" / name


def check_names(project: Path, pool: str, name: str, force: bool, suffixes: tuple[str, ...] = ("", CONTROL_SUFFIX)) -> None:
    """--name must be a dataset name, not the pool, and not a dataset made by anything but
    select/decontaminate (an import's dataset is replaced only with ``force``)."""
    if not _NAME.match(name or ""):
        raise FactoryKitError(f"--name {name!r}: use letters, digits, _ . - (e.g. tcm_selected)")
    for target in (name + suffix for suffix in suffixes):
        if target == pool:
            raise FactoryKitError(f"--name {name}: would overwrite the pool dataset {pool}; choose another name")
        meta = _read_json(paths.meta_dir(project) / f"{target}.json")
        registered = target in registry.load(paths.registry_dir(project))
        made_here = (meta or {}).get("selected_from") or (meta or {}).get("decontaminated_from")
        if (registered or meta) and not made_here and not force:
            raise FactoryKitError(f"--name {name}: `{target}` already exists and was not made by `data select` "
                                  "or `data decontaminate`; "
                                  "choose another --name, or pass --force to replace it")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_rows(path: Path, pool: Pool, picks: list[Pick], items: list[EvalItem]) -> None:
    by_row = {p.row: p for p in picks}
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for i, row in pool.rows([p.row for p in picks]):
            p = by_row[i]
            row = {**row, "select_match": items[p.item].id, "select_score": round(float(p.score), 4),
                   "select_arm": p.arm}
            fh.write(orjson.dumps(row) + b"\n")


def _register(project: Path, pool: Pool, name: str, path: Path, opts: Options, arm: str, rows: int) -> None:
    reg_dir = paths.registry_dir(project)
    entry = {**pool.entry, "file_name": registry.file_name_for(reg_dir, path)}
    registry.register(reg_dir, {name: entry})
    pool_meta = _read_json(paths.meta_dir(project) / f"{pool.name}.json") or {}
    meta = {key: pool_meta[key] for key in ("format", "output_format", "options") if key in pool_meta}
    meta.update({"name": name, "total": rows, "accepted": rows, "quarantined": 0, "duplicates": 0,
                 "output": paths.relative(path, project), "registered": [name], "selected_from": pool.name,
                 "select_arm": arm, "select_options": vars(opts)})
    io.write_json(paths.meta_dir(project) / f"{name}.json", meta)


def write(project: Path, pool: Pool, items: list[EvalItem], result: Result, opts: Options, name: str,
          embedder_id: str, timings: dict[str, float]) -> dict[str, Any]:
    """Write both arms, register them, write stats/dropped/histogram; returns the stats."""
    out_dir = select_dir(project, name)
    control_name = name + CONTROL_SUFFIX
    data_dir = paths.data_dir(project)
    main_path, control_path = data_dir / f"{name}.jsonl", data_dir / f"{control_name}.jsonl"
    _write_rows(main_path, pool, result.picks, items)
    _write_rows(control_path, pool, result.control, items)
    _register(project, pool, name, main_path, opts, "selected", len(result.picks))
    _register(project, pool, control_name, control_path, opts, "control", len(result.control))
    dropped_path = out_dir / "dropped.jsonl"
    _write_dropped(dropped_path, pool, items, result)
    stats = {
        "name": name, "control": control_name, "pool": pool.name, "embedder": embedder_id,
        "eval": sorted({item.id.rsplit(":", 1)[0] for item in items}),
        "options": vars(opts), "counts": result.counts, "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "scores": {"selected": _describe([p.score for p in result.picks if p.arm == "recall"]),
                   "random": _describe([p.score for p in result.picks if p.arm == "random"]),
                   "control": _describe([p.score for p in result.control]),
                   "pool_sample": _describe(result.background.tolist())},
        "files": {"selected": paths.relative(main_path, project), "control": paths.relative(control_path, project),
                  "dropped": paths.relative(dropped_path, project)},
        "per_item": result.per_item,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    stats["files"]["histogram"] = paths.relative(_histogram(out_dir / "histogram.png", result, opts, name), project)
    io.write_json(out_dir / "stats.json", stats)
    stats["files"]["stats"] = paths.relative(out_dir / "stats.json", project)
    return stats


def _write_dropped(path: Path, pool: Pool, items: list[EvalItem], result: Result) -> None:
    """Every row a rule kept out, with the eval item it matched: so nothing is dropped unseen."""
    drops = sorted(result.drops, key=lambda d: d.row)
    queries = pool.queries
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for d in drops:
            fh.write(orjson.dumps({"row": d.row + 1, "rule": d.rule, "match": items[d.item].id,
                                   "score": round(float(d.score), 4), "span": d.span, "stage": d.stage,
                                   "query": queries[d.row][:200]}) + b"\n")


def _describe(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = np.percentile(arr, [10, 50, 90]).tolist()
    return {"count": len(values), "mean": round(float(arr.mean()), 4), "min": round(float(arr.min()), 4),
            "p10": round(p10, 4), "p50": round(p50, 4), "p90": round(p90, 4), "max": round(float(arr.max()), 4)}


def _histogram(path: Path, result: Result, opts: Options, name: str) -> Path:
    """Best-match scores of the pool (a sample), the recalled rows and the control arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    bins = np.linspace(-0.1, 1.0, 45)
    series = [("pool (sample)", result.background, "#bbbbbb"),
              ("selected: recalled", [p.score for p in result.picks if p.arm == "recall"], "#3b7dd8"),
              ("control arm", [p.score for p in result.control], "#e07b39")]
    for label, values, color in series:
        if len(values):
            ax.hist(values, bins=bins, alpha=0.6, label=f"{label} ({len(values):,})", color=color, density=True)
    for value, label in ((opts.min_similarity, "min"), (opts.max_similarity, "max")):
        if value is not None:
            ax.axvline(value, color="black", linestyle="--", linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f" {label}", fontsize=8)
    ax.set_title(f"{name}: best-match cosine to the eval items")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
