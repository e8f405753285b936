"""``factory-kit data select`` end to end: read the pool and eval items, embed (cached), select,
write. The CLI calls :func:`select_dataset`; tests and notebooks can too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from factory_kit.core import io, paths
from factory_kit.select import cache, embed, output
from factory_kit.select.options import Options
from factory_kit.select.recall import Result, select
from factory_kit.select.sources import Pool, load_eval


def select_dataset(pool_name: str, eval_specs: list[str] | tuple[str, ...], name: str, *,
                   options: Options | None = None, embedder: str | embed.Embedder | None = None,
                   base_url: str | None = None, key_env: str | None = None, use_cache: bool = True,
                   force: bool = False, project: Path | None = None) -> tuple[dict[str, Any], Result]:
    """Select rows of ``pool_name`` for the items of ``eval_specs`` into dataset ``name`` (and the
    control arm ``name_random``). Returns (stats, result). Raises FactoryKitError on bad input."""
    project = Path(project) if project is not None else paths.project_dir()
    opts = options or Options()
    opts.check()  # before any slow step
    output.check_names(project, pool_name, name, force)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    items = load_eval(eval_specs, project)
    pool = Pool(pool_name, project)
    timings["read"] = time.perf_counter() - started

    model = embedder if embedder is not None and not isinstance(embedder, str) else \
        embed.make(embedder, base_url=base_url, key_env=key_env)
    store = cache.EmbeddingCache(cache.cache_root(project), model.model_id) if use_cache else None
    t = time.perf_counter()
    pool_vecs = cache.embed(pool.queries, model, cache=store, use_cache=use_cache, label="embedding pool")
    item_vecs = cache.embed([i.embed_text for i in items], model, cache=store, use_cache=use_cache,
                            label="embedding eval items")
    question_vecs = cache.embed([i.question for i in items], model, cache=store, use_cache=use_cache,
                                label="embedding eval questions")
    timings["embed"] = time.perf_counter() - t
    texts = len(pool) + 2 * len(items)
    cache_info = {"texts": texts, "served": store.hits if store is not None else 0,
                  "computed": store.stored if store is not None else texts,
                  "folder": paths.relative(store.dir, project) if store is not None else None}

    t = time.perf_counter()
    result = select(pool, items, pool_vecs, item_vecs, opts, question_vecs)
    timings["select"] = time.perf_counter() - t
    t = time.perf_counter()
    stats = output.write(project, pool, items, result, opts, name, model.model_id, timings)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    stats["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    stats["cache"] = cache_info
    io.write_json(output.select_dir(project, name) / "stats.json", stats)
    return stats, result
