"""``factory-kit data decontaminate DATASET --against BENCHMARK...``: take every row that
overlaps an evaluation set out of a dataset, into the quarantine, with the item it matched.

A row goes when it shares a long character span with an item (see contam.py: normalised
text, ``ngram`` characters, 13 by default) or, with ``embedding_threshold``, when its cosine
similarity to an item (question + options, or the bare question) reaches the threshold.

In place by default, because the point is that no recipe trains on the test any more: the
dataset keeps its name (recipes need no edit), and so do the split files its import
registered (``NAME_train``/``_val``/``_test`` hold the same rows). Before a file is replaced,
it is copied to ``data/backup/``; removed rows go to ``data/quarantine/NAME.contaminated.jsonl``;
the import record (``data/meta/NAME.json``) notes what the dataset was checked against, and a
re-import (which brings the rows back) drops that note. ``name`` writes a cleaned copy under a
new name instead and leaves the dataset alone; ``dry_run`` only reports.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from factory_kit.core import io, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import readers, registry
from factory_kit.select import cache, embed
from factory_kit.select.contam import DEFAULT_NGRAM, Matcher
from factory_kit.select.output import check_names
from factory_kit.select.sources import EvalItem, Pool, load_eval

EXAMPLES = 20


def _targets(project: Path, dataset: str, name: str | None, against: list[str] | tuple[str, ...]) -> list[str]:
    """The dataset, plus (in place) the split datasets its own import registered, except any
    that is itself an eval set (``tcm_qa --against tcm_qa_val`` cleans tcm_qa and tcm_qa_train)."""
    registered = registry.load(paths.registry_dir(project))
    if dataset not in registered:
        Pool(dataset, project)  # raises the standard "not registered" line
    if dataset in against:
        raise FactoryKitError(f"--against {dataset}: that is the dataset being cleaned; name the evaluation set")
    if name is not None:
        return [dataset]
    meta = _meta(project, dataset) or {}
    splits = [s for s in meta.get("registered") or [] if s != dataset and s in registered and s not in against]
    return [dataset, *splits]


def _meta(project: Path, name: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads((paths.meta_dir(project) / f"{name}.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class _EmbeddingCheck:
    """Best cosine of rows to the items (question + options, and bare question), via faiss."""

    def __init__(self, items: list[EvalItem], threshold: float, spec, base_url, key_env, project, use_cache):
        import faiss

        self.model = spec if spec is not None and not isinstance(spec, str) else \
            embed.make(spec, base_url=base_url, key_env=key_env)
        self.project, self.use_cache, self.threshold, self.m = project, use_cache, threshold, len(items)
        self.store = cache.EmbeddingCache(cache.cache_root(project), self.model.model_id) if use_cache else None
        vecs = np.vstack([self._embed([i.embed_text for i in items], "embedding eval items"),
                          self._embed([i.question for i in items], "embedding eval questions")])
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)

    def _embed(self, texts: list[str], label: str) -> np.ndarray:
        return cache.embed(texts, self.model, cache=self.store, use_cache=self.use_cache, label=label)

    def best(self, queries: list[str]) -> tuple[np.ndarray, np.ndarray]:
        D, I = self.index.search(self._embed(queries, "embedding rows"), 1)
        return D[:, 0], I[:, 0] % self.m


def _scan(pool: Pool, items: list[EvalItem], matcher: Matcher, check: _EmbeddingCheck | None) -> list[dict | None]:
    """Per row: None (clean) or what it matched."""
    n = len(pool)
    scores, best = check.best(pool.queries) if check is not None else (None, None)
    found: list[dict | None] = []
    with progress.bar(f"checking {pool.name}", total=n, unit="rows") as bar:
        for i, row in pool.rows(list(range(n))):
            hit = matcher.find(pool.full_text_of(row))
            if hit is not None:
                found.append({"rule": hit.rule, "match": items[hit.item].id, "span": hit.span})
            elif scores is not None and scores[i] >= check.threshold:
                found.append({"rule": "embedding", "match": items[int(best[i])].id, "score": round(float(scores[i]), 4)})
            else:
                found.append(None)
            bar.advance(1)
    return found


def _write_clean(project: Path, pool: Pool, found: list[dict | None], out: Path, quarantine: Path,
                 keep_old: bool) -> None:
    """Clean rows to ``out``; removed rows to ``quarantine``, after what an earlier in-place run
    put there (``keep_old``), so a second run never loses the first one's rows."""
    with io.atomic_path(out) as tmp, io.atomic_path(quarantine) as qtmp:
        if keep_old and quarantine.is_file():
            shutil.copyfile(quarantine, qtmp)
        with open(tmp, "wb") as fh, open(qtmp, "ab") as qh:
            for i, row in pool.rows(list(range(len(pool)))):
                if found[i] is None:
                    fh.write(orjson.dumps(row) + b"\n")
                else:
                    qh.write(orjson.dumps({"reason": "contaminated", **found[i], "line": i + 1,
                                           "source": paths.relative(pool.path, project), "original": row}) + b"\n")


def decontaminate(dataset: str, against: list[str] | tuple[str, ...], *, ngram: int = DEFAULT_NGRAM,
                  embedding_threshold: float | None = None, embedder=None, base_url: str | None = None,
                  key_env: str | None = None, name: str | None = None, dry_run: bool = False,
                  use_cache: bool = True, force: bool = False, project: Path | None = None) -> dict[str, Any]:
    """Clean ``dataset`` (and its splits) of rows overlapping ``against``; returns the report."""
    project = Path(project) if project is not None else paths.project_dir()
    if embedding_threshold is not None and not 0.0 < embedding_threshold <= 1.0:
        raise FactoryKitError(f"--embedding-threshold {embedding_threshold}: use a cosine in (0, 1], e.g. 0.9")
    if name is not None:
        check_names(project, dataset, name, force, suffixes=("",))
    started = time.perf_counter()
    items = load_eval(against, project, flag="--against")
    matcher = Matcher(items, ngram)
    targets = _targets(project, dataset, name, against)
    check = _EmbeddingCheck(items, embedding_threshold, embedder, base_url, key_env, project, use_cache) \
        if embedding_threshold is not None else None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # backups of two runs never collide
    record = {"against": sorted({i.id.rsplit(":", 1)[0] for i in items}), "items": len(items), "ngram": ngram,
              "embedding_threshold": embedding_threshold,
              "embedder": check.model.model_id if check is not None else None, "at": stamp,
              "datasets": [name] if name is not None else targets}
    files, per_item, examples, scans = [], {}, [], []
    for target in targets:
        pool = Pool(target, project)
        found = _scan(pool, items, matcher, check)
        removed = [f for f in found if f is not None]
        for i, f in enumerate(found):
            if f is not None:
                per_item[f["match"]] = per_item.get(f["match"], 0) + 1
                if len(examples) < EXAMPLES:
                    examples.append({"dataset": target, "line": i + 1, **f, "query": pool.queries[i][:200]})
        info = {"dataset": target, "file": paths.relative(pool.path, project), "rows": len(pool),
                "removed": len(removed), "kept": len(pool) - len(removed),
                "by_rule": {r: sum(1 for f in removed if f["rule"] == r) for r in sorted({f["rule"] for f in removed})}}
        files.append(info)
        scans.append((pool, target, found, info))
    if not dry_run:
        for pool, target, found, info in scans:  # refuse before anything is written
            _check_writable(pool, target, name, info)
        # the dataset's own file and record last: its import record is then newer than every file
        # cleaned, which is how recipe checks tell a dataset edited since (recipe/checks.py)
        for pool, target, found, info in reversed(scans):
            _apply(project, pool, target, name, found, info, record, stamp)
    report = {"dataset": dataset, "name": name or dataset, "in_place": name is None, "dry_run": dry_run,
              **record, "files": files, "removed": files[0]["removed"] if files else 0,
              "per_item": dict(sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0]))), "examples": examples,
              "seconds": round(time.perf_counter() - started, 3)}
    if not dry_run:
        path = paths.data_dir(project) / "decontam" / f"{name or dataset}.json"
        io.write_json(path, report)
        report["report"] = paths.relative(path, project)
    return report


def _check_writable(pool: Pool, target: str, name: str | None, info: dict) -> None:
    if info["removed"] and info["removed"] == info["rows"]:
        raise FactoryKitError(f"every row of {target} ({info['rows']}) matches the eval set; nothing written")
    if name is None and info["removed"] and (readers.base_suffix(pool.path) not in readers.JSONL_EXT
                                             or pool.path.name.endswith(".gz")):
        raise FactoryKitError(f"{info['file']}: in-place cleaning rewrites JSON Lines files only; "
                              f"pass --name NEW to write a cleaned JSON Lines copy; nothing written")


def _apply(project: Path, pool: Pool, target: str, name: str | None, found, info: dict, record: dict,
           stamp: str) -> None:
    """Write the cleaned file (in place, after a backup, or as ``name``), quarantine, records."""
    data_dir = paths.data_dir(project)
    out_name = name or target
    if name is None and info["removed"]:
        backup = data_dir / "backup" / f"{target}.{stamp}{pool.path.suffix}"
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pool.path, backup)
        info["backup"] = paths.relative(backup, project)
    quarantine = paths.quarantine_dir(project) / f"{out_name}.contaminated.jsonl"
    out = pool.path if name is None else data_dir / f"{name}.jsonl"
    if info["removed"] or name is not None:
        _write_clean(project, pool, found, out, quarantine, keep_old=name is None)
        if info["removed"]:
            info["quarantine"] = paths.relative(quarantine, project)
        else:
            quarantine.unlink(missing_ok=True)
    meta = _meta(project, target) or {}
    if name is not None:
        reg_dir = paths.registry_dir(project)
        registry.register(reg_dir, {name: {**pool.entry, "file_name": registry.file_name_for(reg_dir, out)}})
        meta = {key: meta[key] for key in ("format", "output_format", "options") if key in meta}
        meta.update({"name": name, "total": info["rows"], "accepted": info["kept"], "quarantined": info["removed"],
                     "output": paths.relative(out, project), "registered": [name], "decontaminated_from": target})
    elif not meta:
        return  # a hand-registered dataset: the report in data/decontam/ is the record
    meta["decontaminated"] = {**record, "removed": info["removed"]}
    io.write_json(paths.meta_dir(project) / f"{out_name}.json", meta)
