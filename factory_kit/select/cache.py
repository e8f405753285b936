"""On-disk embedding cache keyed by (model, text hash), under the project's ``.cache/embeddings/``.

Why: embedding 100k rows is the slow part of selection; new thresholds, a new eval set or a
few new rows must not pay it again. Layout: one folder per model (``model.json`` names it),
holding shards ``shard-*.npz`` with ``keys`` (xxh3-64 of the UTF-8 text) and ``vecs``
(float16, L2-normalised). Shards are only ever added (atomically) and merged when there are
many, so a crash mid-run keeps what was already written and concurrent runs never clash.

Vectors are stored as float16 and every caller gets them back through the same float16 ->
float32 -> renormalise path, so a first run and a cached re-run give identical scores.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import xxhash

from factory_kit.core import io, paths, progress
from factory_kit.select import embed as embed_mod
from factory_kit.select.embed import Embedder

MAX_SHARDS = 16
FLUSH_EVERY = 8192  # texts: a shard is written at least this often, so an interrupted run resumes


def cache_root(project: Path | None = None) -> Path:
    return Path(project or paths.project_dir()) / ".cache" / "embeddings"


def text_keys(texts: list[str]) -> np.ndarray:
    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(t.encode("utf-8", "surrogatepass")) for t in texts), dtype=np.uint64, count=len(texts))


def _finish(vectors: np.ndarray) -> np.ndarray:
    """float16 (as stored) -> float32, renormalised."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


class EmbeddingCache:
    """The shards of one model. ``lookup`` then ``add``; counts what it served and stored."""

    def __init__(self, root: Path, model_id: str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)[:60].strip("_") or "model"
        self.dir = Path(root) / f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:10]}"
        self.model_id = model_id
        self.hits = 0
        self.stored = 0
        self._keys = np.zeros(0, dtype=np.uint64)
        self._vecs: np.ndarray | None = None
        self._loaded = False

    def _load(self) -> None:
        shards = sorted(self.dir.glob("shard-*.npz")) if self.dir.is_dir() else []
        keys, vecs = [], []
        for shard in shards:
            try:
                with np.load(shard) as z:
                    k, v = z["keys"], z["vecs"]
            except (OSError, ValueError, KeyError):  # a damaged shard is recomputed, never fatal
                continue
            if len(k) == len(v) and (not vecs or v.shape[1] == vecs[0].shape[1]):
                keys.append(k)
                vecs.append(v)
        if keys:
            all_keys = np.concatenate(keys)
            all_keys, first = np.unique(all_keys, return_index=True)
            self._keys, self._vecs = all_keys, np.concatenate(vecs)[first]
        if len(shards) > MAX_SHARDS and self._vecs is not None:
            self._compact(shards)
        self._loaded = True

    def _compact(self, old: list[Path]) -> None:
        self._write(self._keys, self._vecs)
        for shard in old:
            with contextlib.suppress(FileNotFoundError):
                shard.unlink()

    def _write(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        marker = self.dir / "model.json"
        if not marker.exists():
            io.write_json(marker, {"model": self.model_id, "dim": int(vecs.shape[1])})
        name = f"shard-{time.time_ns():020d}-{secrets.token_hex(3)}.npz"
        with io.atomic_path(self.dir / name) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, vecs=vecs)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, float16 vectors of the found keys in order) for ``keys``."""
        if not self._loaded:
            self._load()
        if self._vecs is None or not len(self._keys):
            return np.zeros(len(keys), dtype=bool), None
        pos = np.searchsorted(self._keys, keys)
        pos_clip = np.minimum(pos, len(self._keys) - 1)
        found = self._keys[pos_clip] == keys
        self.hits += int(found.sum())
        return found, self._vecs[pos_clip[found]]

    def add(self, keys: np.ndarray, vecs16: np.ndarray) -> None:
        if len(keys):
            self._write(keys, vecs16)
            self.stored += len(keys)


def _encode(embedder: Embedder, batches: list[list[str]]) -> Iterator[np.ndarray]:
    """Encoded batches in order: in this process, or spread over worker processes (spawned,
    each rebuilding the embedder from its spec) when the job is large."""
    n = embed_mod.workers(embedder, sum(len(b) for b in batches))
    if n <= 1:
        for batch in batches:
            yield embedder.encode(batch)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=embed_mod.worker_init,
                             initargs=(embedder.spec,)) as pool:
        yield from pool.map(embed_mod.worker_encode, batches)


def embed(texts: list[str], embedder: Embedder, *, project: Path | None = None, cache: EmbeddingCache | None = None,
          use_cache: bool = True, label: str = "embedding") -> np.ndarray:
    """Embeddings of ``texts`` (float32, unit rows), computing only what the cache lacks:
    unique texts, shortest first, in the embedder's batch size, with a progress bar."""
    if cache is None and use_cache:
        cache = EmbeddingCache(cache_root(project), embedder.model_id)
    keys = text_keys(texts)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    found, cached = cache.lookup(uniq) if cache is not None else (np.zeros(len(uniq), dtype=bool), None)
    missing = np.flatnonzero(~found)
    done_idx: list[list[int]] = []
    done_vecs: list[np.ndarray] = []
    if len(missing):
        order = sorted(missing.tolist(), key=lambda u: len(texts[first[u]]))
        pending_keys: list[int] = []
        pending: list[np.ndarray] = []
        batches = [order[i:i + embedder.batch_size] for i in range(0, len(order), embedder.batch_size)]
        with progress.bar(label, total=len(order), unit="texts") as bar:
            for batch, vecs in zip(batches, _encode(embedder, [[texts[first[u]] for u in b] for b in batches])):
                vecs16 = np.asarray(vecs, dtype=np.float32).astype(np.float16)
                done_idx.append(batch)
                done_vecs.append(vecs16)
                pending_keys.extend(batch)
                pending.append(vecs16)
                bar.advance(len(batch))
                if cache is not None and len(pending_keys) >= getattr(embedder, "flush_every", FLUSH_EVERY):
                    cache.add(uniq[pending_keys], np.concatenate(pending))
                    pending_keys, pending = [], []
        if cache is not None and pending_keys:
            cache.add(uniq[pending_keys], np.concatenate(pending))
    if not len(texts):
        return np.zeros((0, 0), dtype=np.float32)
    dim = cached.shape[1] if cached is not None and len(cached) else done_vecs[0].shape[1]
    out16 = np.zeros((len(uniq), dim), dtype=np.float16)
    if cached is not None and found.any():
        out16[found] = cached
    for batch, vecs16 in zip(done_idx, done_vecs):
        out16[batch] = vecs16
    return _finish(out16)[inverse.reshape(-1)]
