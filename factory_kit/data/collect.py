"""The main-process side of an import: units arrive in file order; duplicates are found, accepted
rows written, and everything else quarantined, here and only here (:meth:`Collector.quarantine`).
Output files are temp files, staged by :meth:`Collector.stage` and committed with the rest of
the import (:mod:`.commit`): a crash leaves the old files intact.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from factory_kit.core import io
from factory_kit.core.errors import FactoryKitError
from factory_kit.data.convert import Converter, Rejected, Unit, dumps
from factory_kit.data.dedup import ExactDeduper, NearDeduper
from factory_kit.data.formats.alpaca import to_sharegpt
from factory_kit.data.parallel import Packed

_LOC_BITS = 40  # a row's location for dedup messages: source id << 40 | line
_LOC_MASK = (1 << _LOC_BITS) - 1


class Sink:
    """A JSON Lines temp file beside ``final``, renamed into place on :meth:`commit`."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = io.temp_path_for(final)
        self.fh = open(self.tmp, "wb", buffering=1 << 20)
        self.count = 0

    def rewrite(self, fn: Callable[[dict], dict]) -> None:
        """Apply ``fn`` to every row written so far."""
        self.fh.close()
        with io.atomic_path(self.tmp) as other, open(self.tmp, "rb") as src, open(other, "wb") as dst:
            for line in src:
                dst.write(dumps(fn(orjson.loads(line))) + b"\n")
        self.fh = open(self.tmp, "ab", buffering=1 << 20)

    def flush(self) -> None:
        self.fh.flush()

    def commit(self) -> Path:
        self.fh.close()
        io.replace(self.tmp, self.final)
        return self.final

    def discard(self) -> None:
        self.fh.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


class Collector:
    """Counts, reasons and the first few messages of one import, and its three output files."""

    def __init__(self, conv: Converter, deduper: Any, out: Path, quarantine: Path, bench: Path | None):
        self.conv = conv
        self.deduper = deduper
        self.out = Sink(out)
        self.rejects = Sink(quarantine)
        self.bench = Sink(bench) if bench is not None else None
        self.accepted = self.quarantined = self.duplicates = 0
        self.reasons: Counter[str] = Counter()
        self.examples: list[str] = []  # the first few quarantine messages
        self.strata: Counter[str] = Counter()
        self.source_names: list[str] = []
        self._source_ids: dict[str, int] = {}
        self.multi = False  # an alpaca row with history was accepted: every row is written as sharegpt

    @property
    def total(self) -> int:
        return self.accepted + self.quarantined

    def _sinks(self) -> list[Sink]:
        return [s for s in (self.out, self.rejects, self.bench) if s is not None]

    def source_id(self, source: str) -> int:
        sid = self._source_ids.get(source)
        if sid is None:
            sid = self._source_ids[source] = len(self.source_names)
            self.source_names.append(source)
        return sid

    # -- the one place that quarantines --------------------------------------------------------
    def quarantine(self, unit: Rejected, duplicate: bool = False) -> None:
        self.rejects.fh.write(unit.record)
        self.quarantined += 1
        self.duplicates += duplicate
        self.reasons[unit.kind] += 1
        if len(self.examples) < 5:
            self.examples.append(unit.message)

    def _duplicate(self, source: str, line: int, first_loc: int, what: str, original: Any,
                   phys: int | None = None, tag: int = 0) -> None:
        # bits 64 and up of a location: a text chunk's number and last line (convert.chunk_tag)
        sid = (first_loc >> _LOC_BITS) & ((1 << (64 - _LOC_BITS)) - 1)
        where = self.conv.where(self.source_names[sid], first_loc & _LOC_MASK, first_loc >> 64 << 64)
        self.quarantine(self.conv.reject(source, line, f"{what} of {where}", "duplicate", original, phys=phys,
                                         tag=tag), duplicate=True)

    # -- taking units ----------------------------------------------------------------------------
    def take(self, units: list[Unit], source: str, original_of: Callable[[Any], Any] | None = None,
             sketched: list[int] | None = None) -> None:
        """Units of ``source`` in order; ``original_of`` turns an accepted row's ``original``
        token into what a duplicate's quarantine record shows (default: the token itself);
        ``sketched``: the accepted rows' exact-dedup hashes, their near-dedup sketches given to
        the deduper already (:meth:`take_packed`)."""
        sid = self.source_id(source)
        deduper, out = self.deduper, self.out
        exact_hashes = iter(sketched) if sketched is not None else None
        if exact_hashes is None and len(units) > 1 and hasattr(deduper, "prepare"):  # near dedup sketches a block at once
            deduper.prepare([u.key for u in units if type(u) is not Rejected and u.hash is None])
        for u in units:
            if type(u) is Rejected:
                self.quarantine(u)
                continue
            if deduper is not None:
                loc = (sid << _LOC_BITS) | u.line | u.tag
                hit = deduper.check_sketched(next(exact_hashes), loc) if exact_hashes is not None \
                    else deduper.check(u.hash if u.hash is not None else u.key, loc)
                if hit is not None:
                    if isinstance(hit, tuple):
                        first_loc, sim = hit
                        what = "exact duplicate" if sim >= 1.0 else f"near-duplicate (similarity {sim:.2f})"
                    else:
                        first_loc, what = hit, "exact duplicate"
                    original = original_of(u.original) if original_of is not None else u.original
                    self._duplicate(source, u.line, first_loc, what, original, u.phys, u.tag)
                    continue
            row = u.row
            if u.multi and not self.multi:
                self.multi = True
                self.conv.importer.multi_turn = True
                if out.count:
                    out.rewrite(to_sharegpt)
            elif self.multi and not u.multi:
                row = dumps(to_sharegpt(orjson.loads(row))) + b"\n"
            out.fh.write(row)
            out.count += 1
            self.accepted += 1
            if u.bench is not None and self.bench is not None:
                self.bench.fh.write(u.bench)
            if u.stratum is not None:
                self.strata[u.stratum] += 1

    def take_packed(self, packed: Packed, chunk: bytes, source: str) -> None:
        """A worker's block: deduped in one call, then written as whole slices of its blob."""
        def original_of(span: tuple[int, int]) -> Any:
            return orjson.loads(chunk[span[0]:span[1]])

        deduper = self.deduper
        near = packed.near is not None and isinstance(deduper, NearDeduper)  # sketched by the worker
        if near:
            deduper.prepare_sketched(packed.near[0], packed.near[1])  # type: ignore[index]
        if packed.multi or self.multi or (deduper is not None and not near and not isinstance(deduper, ExactDeduper)):
            self.take(packed.units(), source, original_of, packed.near[2].tolist() if near else None)  # type: ignore[index]
            return
        sid = self.source_id(source)
        if near:
            dups = deduper.check_many(packed.near[2].tolist(), sid << _LOC_BITS, packed.lines)  # type: ignore[index]
        else:
            dups = [(i, first, 1.0) for i, first in deduper.check_many(packed.hashes, sid << _LOC_BITS, packed.lines)] \
                if deduper is not None else []
        blob, ends, rejects = memoryview(packed.blob), packed.ends, packed.rejects
        start = ri = 0  # blob offset of the first row not written yet; next reject
        for i, first_loc, sim in dups:
            while ri < len(rejects) and rejects[ri][0] <= i:
                self.quarantine(rejects[ri][1])
                ri += 1
            before = ends[i - 1] if i else 0
            if before > start:
                self.out.fh.write(blob[start:before])
            start = ends[i]
            what = "exact duplicate" if sim >= 1.0 else f"near-duplicate (similarity {sim:.2f})"
            self._duplicate(source, packed.lines[i], first_loc, what, original_of((packed.starts[i], packed.stops[i])))
        for _, rejected in rejects[ri:]:
            self.quarantine(rejected)
        if len(blob) > start:
            self.out.fh.write(blob[start:])
        written = len(packed.lines) - len(dups)
        self.out.count += written
        self.accepted += written
        if packed.strata is not None:
            dup_rows = {d[0] for d in dups}
            self.strata.update(s for i, s in enumerate(packed.strata) if i not in dup_rows)

    # -- the end ---------------------------------------------------------------------------------
    def discard(self) -> None:
        for sink in self._sinks():
            sink.discard()

    def stage(self, outputs: Any, project: Path, source: str) -> Path | None:
        """Hand the complete output files to ``outputs`` (a :class:`factory_kit.data.commit.Outputs`),
        to be put in place with the rest of the import; returns the quarantine file (None when
        nothing was quarantined). With no row accepted, nothing replaces the old rows and this
        raises (after putting the quarantine file in place, for its reasons)."""
        for sink in self._sinks():
            sink.fh.close()
        if self.accepted == 0:
            self.out.discard()
            if self.bench is not None:
                self.bench.discard()
            if self.quarantined:
                self.rejects.commit()
                rel = os.path.relpath(self.rejects.final, project)
                raise FactoryKitError(f"{self.examples[0]}; no row accepted ({self.total} quarantined, "
                                      f"every reason in {rel})")
            self.rejects.discard()
            raise FactoryKitError(f"{source}: no rows found (the file has no data rows)")
        outputs.put(self.out.final, self.out.tmp)
        if self.bench is not None:
            outputs.put(self.bench.final, self.bench.tmp)
        if self.quarantined:
            outputs.put(self.rejects.final, self.rejects.tmp)
            return self.rejects.final
        self.rejects.discard()
        outputs.delete(self.rejects.final)  # stale rejects of an earlier import of this name
        return None
