"""Worker processes for large JSON Lines files: each converts a block of lines and hands back a
:class:`Packed` result (one bytes blob and int lists), so that passing it to the main process
costs little per row. The main process dedups and writes it (:meth:`Collector.take_packed`).
With ``--dedup near`` the workers also sketch each accepted row (the costly half of near dedup);
the main process only looks the sketches up, in file order, so the result is the same as
converting in one process.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from factory_kit.data import dedup as dedup_mod
from factory_kit.data import readers
from factory_kit.data.convert import Accepted, ConvertConfig, Converter, Rejected, Unit

PARALLEL_FORMATS = ("alpaca", "cot", "sharegpt", "openai")


@dataclass(slots=True)
class Packed:
    """A block's accepted rows, in order, as slices of ``blob`` (row i ends at ``ends[i]``), with
    their lines, dedup hashes (-1: none), byte spans in the block (``starts``/``stops``, to rebuild
    a duplicate's original), strata; ``rejects`` as (index of the accepted row they precede, unit);
    ``near``: with ``--dedup near``, the rows' sketches (:meth:`NearDeduper.sketch_rows`)."""

    blob: bytes = b""
    ends: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    strata: list[Any] | None = None
    multi: set[int] = field(default_factory=set)
    rejects: list[tuple[int, Rejected]] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    near: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        """Units in the block (accepted and rejected): records read, for progress."""
        return len(self.lines) + len(self.rejects)

    def units(self) -> list[Unit]:
        """The block as units, for the collector's general path; an accepted row's ``original``
        is its byte span in the block."""
        units: list[Unit] = []
        prev = 0
        for i, line in enumerate(self.lines):
            h = self.hashes[i]
            units.append(Accepted(line, self.blob[prev:self.ends[i]], None if h == -1 else h, None, None,
                                  self.strata[i] if self.strata else None, i in self.multi,
                                  (self.starts[i], self.stops[i])))
            prev = self.ends[i]
        for pos, rejected in reversed(self.rejects):
            units.insert(pos, rejected)
        return units


_WORKER: Converter | None = None
_NEAR: dedup_mod.NearDeduper | None = None


def _worker_init(config: ConvertConfig) -> None:
    global _WORKER, _NEAR
    # Ctrl-C reaches the whole process group: the main process handles it and ends the pool (with
    # SIGTERM, which must simply end a worker, not raise as the importer's handler does).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER = Converter(config)
    if config.dedup == "near":  # same parameters (and seed) as the main process's deduper
        _NEAR = dedup_mod.NearDeduper(threshold=config.near_threshold, ngram=config.near_ngram)


def convert_block(conv: Converter, chunk: bytes, first_line: int, source: str, encoding: str,
                  near: dedup_mod.NearDeduper | None = None) -> Packed:
    """Convert one block of JSON Lines (``first_line``: the number of its first line); ``near``:
    sketch the accepted rows' near-dedup keys with it."""
    before = Counter(conv.redactor.counts) if conv.redactor else Counter()
    notes_before = Counter(conv.importer.notes)
    out = Packed(strata=[] if conv.strat_key else None)
    blob: list[bytes] = []
    size = 0
    ends, lines, hashes, starts, stops = out.ends, out.lines, out.hashes, out.starts, out.stops
    strata: list[Any] = out.strata if out.strata is not None else []
    fast_stratum = source if conv.strat_key else None
    utf8 = encoding in ("utf-8", "utf-8-sig")
    loads = orjson.loads
    fast = conv.fast_row if conv.fast and near is None else None
    keys: list[bytes] = []
    pos = 0
    line = first_line - 1
    for data in chunk.split(b"\n"):
        line += 1
        end = pos + len(data) + 1
        obj = None
        if utf8 and line != 1:
            try:
                obj = loads(data)
            except orjson.JSONDecodeError:
                pass
        if type(obj) is dict:
            done = fast(obj, line, source) if fast is not None else None
            if done is not None:  # the common case, without the loop below
                row, h = done
                blob.append(row)
                size += len(row)
                ends.append(size)
                lines.append(line)
                hashes.append(h if h is not None else -1)
                starts.append(pos)
                stops.append(end)
                strata.append(fast_stratum)
                pos = end
                continue
            units = conv.record_obj(obj, line, source, (pos, end))
        else:
            rec = readers.parse_jsonl_line(data, line, source, encoding)
            units = conv.record(rec, (pos, end)) if rec is not None else ()
        for u in units:
            if type(u) is Rejected:
                out.rejects.append((len(lines), u))
                continue
            blob.append(u.row)
            keys.append(u.key)  # type: ignore[arg-type]
            size += len(u.row)
            ends.append(size)
            lines.append(u.line)
            hashes.append(u.hash if u.hash is not None else -1)
            starts.append(pos)
            stops.append(end)
            strata.append(u.stratum)
            if u.multi:
                out.multi.add(len(lines) - 1)
        pos = end
    out.blob = b"".join(blob)
    if near is not None:
        out.near = near.sketch_rows(keys)
    out.redactions = dict(conv.redactor.counts - before) if conv.redactor else {}
    out.notes = dict(conv.importer.notes - notes_before)
    return out


def _worker_block(chunk: bytes, first_line: int, source: str, encoding: str) -> Packed:
    assert _WORKER is not None
    return convert_block(_WORKER, chunk, first_line, source, encoding, _NEAR)


def blocks(path: Path, config: ConvertConfig, source: str, encoding: str, workers: int,
           chunk_bytes: int = 4 << 20) -> Iterator[tuple[Packed, bytes]]:
    """(packed result, block bytes) per block, in file order, at most 2 blocks per worker in
    flight (so memory stays bounded whatever the file size)."""
    import multiprocessing as mp
    from collections import deque

    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(config,)) as pool:
        pending: deque = deque()
        chunks = readers.jsonl_chunks(path, chunk_bytes)
        done = False
        while True:
            while not done and len(pending) < 2 * workers:
                item = next(chunks, None)
                if item is None:
                    done = True
                    break
                chunk, first = item
                pending.append((pool.apply_async(_worker_block, (chunk, first, source, encoding)), chunk))
            if not pending:
                break
            fut, chunk = pending.popleft()
            yield fut.get(), chunk


def worker_count(fmt: str, opts: dict[str, Any], path: Any, encoding: str) -> int:
    """How many worker processes to use for this file (0: convert it in this process)."""
    workers = opts["workers"]
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    workers = int(workers)
    if workers < 2 or fmt not in PARALLEL_FORMATS or opts["limit"] or not isinstance(path, Path) \
            or not path.is_file():
        return 0
    if path.stat().st_size < int(opts["parallel_min_bytes"]) or not readers.is_jsonl(path, encoding):
        return 0
    return workers
