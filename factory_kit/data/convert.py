"""One input record -> typed units: :class:`Accepted` rows (to dedup and write) or
:class:`Rejected` ones (to quarantine, with the reason). Stateless per record apart from the
format importer's own buffers, so it runs in the main process or in a worker (:mod:`.parallel`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from factory_kit.data import dedup as dedup_mod
from factory_kit.data import readers
from factory_kit.data import split as split_mod
from factory_kit.data.formats import HINTS, IMPORTERS, Importer, detect_row
from factory_kit.data.formats.alpaca import AlpacaImporter, to_sharegpt
from factory_kit.data.formats.text import TextImporter
from factory_kit.data.pii import Redactor
from factory_kit.data.quality import FieldReader, Normalizer, RowError


@dataclass(slots=True)
class Accepted:
    """A converted row, not yet checked for duplicates."""

    line: int  # as messages name the row: its line, or its item number in an item-addressed source
    row: bytes  # the JSON Lines line to write, provenance included
    hash: int | None  # exact-dedup hash (--dedup exact)
    key: bytes | None  # near-dedup key (--dedup near)
    bench: bytes | None  # the benchmark line of an exam item
    stratum: str | None  # its --stratify value
    multi: bool  # an alpaca row with history: the import turns sharegpt
    original: Any  # what a duplicate's quarantine record shows (or a token the collector resolves)
    phys: int | None = None  # the physical line of an item-addressed row
    tag: int = 0  # a text chunk's number and last line (:func:`chunk_tag`), 0 for a row


# A text chunk's place, beside its first line: its number in its source and its last line, in
# the bits of a dedup location above 64 (``source << 40 | line`` below), so that a duplicate
# chunk names both chunks exactly though several chunks can start on one line.
_TAG_SHIFT = 64
_MASK40 = (1 << 40) - 1


def chunk_tag(chunk: int, last: int) -> int:
    return ((chunk << 40) | last) << _TAG_SHIFT if chunk else 0


def _chunk_place(source: str, line: int, tag: int) -> str:
    chunk, last = tag >> (_TAG_SHIFT + 40), (tag >> _TAG_SHIFT) & _MASK40
    return f"{source}:{line}{f'-{last}' if last > line else ''} (chunk {chunk})"


@dataclass(slots=True)
class Rejected:
    """A unit that goes to quarantine: its record (a JSON line) and the message users see."""

    line: int
    kind: str  # parse | decode | missing | type | empty | invalid | format | too_long | duplicate ...
    record: bytes
    message: str


Unit = Accepted | Rejected


def dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # lone surrogates from undecodable cells, exotic types from parquet/excel
        return json.dumps(obj, ensure_ascii=True, default=str).encode()


@dataclass
class ConvertConfig:
    """What a converter needs; plain data, so worker processes get it pickled."""

    fmt: str
    width_policy: str = "zh"
    t2s: bool = False
    kinds: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)
    max_chars: int = 0
    dedup: str = "exact"
    near_threshold: float = 0.85  # --dedup near: worker processes sketch rows with these
    near_ngram: int = 3
    strat_key: str | None = None
    importer: dict[str, Any] = field(default_factory=dict)  # options of the format importer


class Converter:
    """Raw records -> units, through the format importer, normaliser, redactor and length check."""

    def __init__(self, config: ConvertConfig):
        self.config = config
        self.fmt = config.fmt
        normalizer = Normalizer(width=config.width_policy, t2s=bool(config.t2s))
        self.redactor = Redactor(config.kinds) if config.kinds else None
        self.fields = FieldReader(normalizer, self.redactor)
        self.max_chars = config.max_chars
        self.dedup = config.dedup
        self.strat_key = config.strat_key
        self.importers: dict[str, Importer] = {}  # one per format used (a folder's files may differ)
        self._first = config.fmt
        self.use(config.fmt)
        self._norm = self.fields.normalize
        self._src_json: dict[str, bytes] = {}
        # Sources whose rows are addressed by JSON array element ("item N", minified arrays):
        # there a unit's ``line`` is the item number and ``self._phys`` the line it starts on.
        self.by_item: set[str] = set()
        self._phys: int | None = None

    def use(self, fmt: str | None) -> None:
        """Convert the next rows as ``fmt`` (None: as before); a folder import reads each file by
        its own format, as long as they write the same rows (:data:`formats.DATASET_SHAPE`)."""
        if fmt is None or (fmt == self.fmt and self.importers):
            return
        importer = self.importers.get(fmt)
        if importer is None:
            cls = TextImporter if fmt == "text" else IMPORTERS[fmt]
            importer = self.importers[fmt] = cls(self.fields, self.config.columns, **self.config.importer)
        self.fmt, self.importer = fmt, importer
        if fmt != self.config.fmt:
            self.config = replace(self.config, fmt=fmt)  # what worker processes convert with
        self.is_alpaca = isinstance(importer, AlpacaImporter)
        #: the common alpaca row can skip the general machinery (see :meth:`fast_row`)
        self.fast = (self.is_alpaca and self.redactor is None and self.dedup in ("exact", "none")
                     and self.strat_key in (None, "source"))
        self._keys: dict[tuple, tuple] = importer.resolved if self.is_alpaca else {}  # type: ignore[attr-defined]

    def entry(self) -> dict[str, Any]:
        """The registry entry of the rows written (multi-turn alpaca rows made them sharegpt)."""
        for importer in self.importers.values():
            if getattr(importer, "multi_turn", False):
                return importer.entry()
        return self.importers[self._first].entry()

    def notes(self) -> Counter:
        """What the importers did to rows that the report should say (this process's)."""
        return sum((importer.notes for importer in self.importers.values()), Counter())

    def finish(self) -> None:
        for importer in self.importers.values():
            importer.finish()

    def where(self, source: str, n: int, tag: int = 0) -> str:
        """Where row ``n`` of ``source`` is, as messages say it (duplicates name it); ``tag``:
        a text chunk's (:func:`chunk_tag`, or a dedup location's bits from 64 up)."""
        if tag:
            return _chunk_place(source, n, tag)
        return f"{source} item {n}" if source in self.by_item else f"{source}:{n}"

    def reject(self, source: str, line: int, reason: str, kind: str, original: Any = None,
               raw: str | None = None, phys: int | None = None, tag: int = 0) -> Rejected:
        rec: dict[str, Any]
        if tag:  # a text chunk
            message = f"{_chunk_place(source, line, tag)}: {reason}"
            rec = {"reason": reason, "kind": kind, "source": source, "line": line,
                   "last_line": (tag >> _TAG_SHIFT) & _MASK40, "chunk": tag >> (_TAG_SHIFT + 40), "message": message}
        elif source in self.by_item:
            message = f"{source}: item {line}: {reason}"
            rec = {"reason": reason, "kind": kind, "source": source,
                   "line": phys if phys is not None else self._phys, "item": line, "message": message}
        else:
            message = f"{source}:{line}: {reason}"
            rec = {"reason": reason, "kind": kind, "source": source, "line": line, "message": message}
        if original is not None:
            rec["original"] = original
        else:
            rec["raw"] = raw
        return Rejected(line, kind, dumps(rec) + b"\n", message)

    def record(self, rec: readers.RawRecord, orig: Any = None) -> list[Unit]:
        line, self._phys = rec.line, None
        if rec.item is not None:
            self.by_item.add(rec.source)
            self._phys, line = rec.line, rec.item
        if rec.error is not None:
            return [self.reject(rec.source, line, rec.error, rec.kind, raw=rec.raw)]
        return self.record_obj(rec.obj, line, rec.source, orig)

    def _provenance(self, source: str) -> bytes:
        src = self._src_json.get(source)
        if src is None:
            src = self._src_json[source] = b',"source":' + orjson.dumps(source) + b',"source_row":'
        return src

    def fast_row(self, obj: dict, line: int, source: str) -> tuple[bytes, int | None] | None:
        """(row line, exact-dedup hash) of the common alpaca row (known keys, plain non-empty
        strings, no history, no redaction) without the general machinery; None means "take
        the general path". Gives exactly what :meth:`record_obj` would (tests compare them)."""
        keys = self._keys.get(tuple(obj))
        if keys is None:
            return None
        ik, nk, ok, sk, hk = keys
        if ik is None or ok is None or (hk is not None and obj[hk]):
            return None
        i, o = obj[ik], obj[ok]
        inp = obj[nk] if nk is not None else ""
        sy = obj[sk] if sk is not None else ""
        if type(i) is not str or type(o) is not str or type(inp) is not str or type(sy) is not str:
            return None
        norm = self._norm
        i, o = norm(i), norm(o)
        if not i or not o:
            return None
        if inp:
            inp = norm(inp)
        if sy:
            sy = norm(sy)
        if self.max_chars and len(i) + len(o) + len(inp) + len(sy) > self.max_chars:
            return None
        body = orjson.dumps({"instruction": i, "input": inp, "output": o, "system": sy})
        h = dedup_mod.json_key_hash(body) if self.dedup == "exact" else None
        return b"%b%b%d}\n" % (body[:-1], self._provenance(source), line), h

    def record_obj(self, obj: dict, line: int, source: str, orig: Any = None) -> list[Unit]:
        if self.fast:
            fast = self.fast_row(obj, line, source)
            if fast is not None:
                return [Accepted(line, fast[0], fast[1], None, None, source if self.strat_key else None, False,
                                 orig if orig is not None else obj, self._phys)]
        try:
            rows = self.importer.convert(obj, line)
        except RowError as exc:
            reason, kind = exc.reason, exc.kind
            if kind == "missing":
                other = detect_row(obj.keys())
                if other and other != self.fmt:
                    reason = (f"row is {other} ({HINTS[other]}), not {self.fmt}: {reason}; "
                              f"import it separately with --format {other}")
                    kind = "format"
            return [self.reject(source, line, reason, kind, obj)]
        if len(rows) == 1 and self.fmt != "text":
            return [self.row(rows[0], source, line, obj, orig)]
        return [self.row(row, source, row.get("_line") or line, {"text": row.get("text")}) for row in rows]

    def row(self, row: dict[str, Any], source: str, line: int, original: Any, token: Any = None) -> Unit:
        """``original`` goes into a quarantine record made here; ``token`` (default: the
        original) travels with an accepted row in case the collector finds it a duplicate."""
        bench_row = row.pop("_benchmark", None) if self.fmt == "mcq" else None
        tag = 0
        if "_line" in row:
            del row["_line"]
            tag = chunk_tag(row.pop("_chunk", 0), row.pop("_last", 0))
        multi = False
        if self.is_alpaca and "history" in row:
            if row["history"]:
                row, multi = to_sharegpt(row), True
            else:
                del row["history"]
        texts = self.importer.texts(row)
        if self.max_chars:
            n = sum(map(len, texts))
            if n > self.max_chars:
                return self.reject(source, line, f"{'chunk' if tag else 'row'} is {n:,} characters, over --max-chars "
                                   f"{self.max_chars:,} (raise it, or 0 for no limit)", "too_long", original, tag=tag)
        try:
            body = orjson.dumps(row)
        except TypeError:
            body = dumps(row)
        key = h = None
        if self.dedup == "exact":
            h = dedup_mod.json_key_hash(body)
        elif self.dedup == "near":
            key = dedup_mod.dedup_key(texts)
        if self.strat_key:
            stratum = source if self.strat_key == "source" else split_mod.stratum_of(row, self.strat_key)
        else:
            stratum = None
        return Accepted(line, b"%b%b%d}\n" % (body[:-1], self._provenance(source), line), h, key,
                        dumps(bench_row) + b"\n" if bench_row else None, stratum, multi,
                        original if token is None else token, self._phys, tag)

    def flush(self, source: str) -> list[Unit]:
        """Units the importer still buffers at the end of a source (text chunks)."""
        if isinstance(self.importer, TextImporter):
            return [self.row(r, source, r.get("_line") or 0, {"text": r.get("text")}) for r in self.importer.end_source()]
        return []
