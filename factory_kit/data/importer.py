"""``factory-kit data import``: any medical source -> ``data/NAME.jsonl`` + dataset_info.json.

One streaming pass: read (sources.files) -> convert + validate (sources.<format>) ->
normalise / redact (quality, pii) -> length check -> dedup (dedup) -> write accepted rows
and quarantine the rest with their reason. Then, when asked, a second streaming pass
splits train/val/test (split), and finally the registry is merged atomically (registry).

Invariant: every input unit is accepted or quarantined (``accepted + quarantined ==
total``); duplicates are quarantined too, so ``duplicates <= quarantined``. For text
imports a unit is a chunk. Nothing is held in memory but one hash per accepted row.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import re
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from factory_kit.data import dedup as dedup_mod
from factory_kit.core import paths
from factory_kit.data import registry
from factory_kit.data import split as split_mod
from factory_kit.core.errors import FactoryKitError
from factory_kit.data.pii import Redactor, parse_kinds
from factory_kit.data.quality import FieldReader, Normalizer, RowError
from factory_kit.data.formats import FORMATS, HINTS, IMPORTERS, detect, detect_row
from factory_kit.data import readers as files_mod
from factory_kit.data.formats.alpaca import AlpacaImporter, to_sharegpt
from factory_kit.data.formats.conversation import TOOL_TEXT_DROPPED
from factory_kit.data.formats.text import TextImporter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SPLIT_SUFFIX = {"train": "_train", "val": "_val", "test": "_test"}
DEFAULTS: dict[str, Any] = {
    "dedup": "exact", "near_threshold": 0.85, "near_ngram": 3, "redact": None, "split": None, "seed": 42,
    "stratify": None, "max_chars": 50000, "chunk_chars": None, "chunk_tokens": None, "tokenizer": None,
    "cot_style": "think", "t2s": False, "width_policy": "zh", "encoding": None, "columns": None,
    "sheet": None, "hf_split": None, "limit": None, "progress": None, "workers": None, "force": False,
    "parallel_min_bytes": 16 << 20,
}


@dataclass
class ImportReport:
    name: str
    format: str
    total: int
    accepted: int
    quarantined: int
    duplicates: int
    output: Path
    quarantine: Path | None
    registered: list[str]
    redactions: dict[str, int]
    benchmark: Path | None
    # beyond the contract
    project: Path | None = None
    splits: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # first few quarantine messages
    sources: list[str] = field(default_factory=list)
    output_format: str = ""
    benchmark_dev: Path | None = None  # few-shot items held out of training (with --split)
    multi_answer_dropped: int = 0  # multi-answer items: trained on, but not in the benchmark files
    blank_rows: int = 0  # fully blank CSV/Excel rows: not rows, so not in total (like blank JSONL lines)
    tool_call_text_dropped: int = 0  # assistant turns with text next to tool_calls: the call kept, the text not
    notes: list[str] = field(default_factory=list)  # what was done to accepted rows, for the user to know
    seconds: float = 0.0

    def rel(self, p: Path | None) -> str:
        if p is None:
            return ""
        try:
            return os.path.relpath(p, self.project) if self.project else str(p)
        except ValueError:
            return str(p)

    def summary(self) -> str:
        q = f"{self.quarantined} quarantined"
        if self.duplicates:
            q += f" incl. {self.duplicates} duplicate{'s' if self.duplicates != 1 else ''}"
        if self.quarantine is not None:
            q += f" ({self.rel(self.quarantine)})"
        line = f"{self.name}: {self.accepted} accepted, {q} -> {self.rel(self.output)}"
        if self.blank_rows:
            line += f"; {self.blank_rows} blank row{'s' if self.blank_rows != 1 else ''} skipped"
        return line

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = self.rel(v)
        return d


def parse_columns(spec: str | dict[str, str] | None) -> dict[str, str]:
    if not spec:
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    out = {}
    for part in str(spec).split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise FactoryKitError(f"--columns {spec!r}: expected FIELD=COLUMN pairs, e.g. instruction=问题,output=答案")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def data_file(project: Path, name: str) -> Path:
    return project / "data" / f"{name}.jsonl"


def quarantine_file(project: Path, name: str) -> Path:
    return project / "data" / "quarantine" / f"{name}.rejected.jsonl"


def benchmark_file(project: Path, name: str) -> Path:
    return project / "data" / "benchmarks" / f"{name}.jsonl"


def _refuse_taking_over(project: Path, name: str, split_names: list[str]) -> None:
    """An import must not silently replace a dataset another import owns: a split of another
    dataset (``tcm_qa_train`` of ``tcm_qa``), or a dataset imported on its own under a name this
    import's --split would write. ``--force`` takes it over."""
    owners: dict[str, str] = {}
    for path, meta in registry.import_metas(meta_file(project, name).parent):
        for dataset in meta.get("registered") or []:
            if dataset != path.stem:
                owners[dataset] = path.stem
    owner = owners.get(name)
    if owner and owner != name:
        raise FactoryKitError(
            f"--name {name}: `{name}` is a split of dataset `{owner}` ({paths.relative(meta_file(project, owner), project)}); "
            f"choose another --name, re-import {owner}, or pass --force to replace it")
    for split_name in split_names:
        if owners.get(split_name) in (None, name) and meta_file(project, split_name).exists():
            raise FactoryKitError(
                f"--split would replace `{split_name}`, a dataset imported on its own "
                f"({paths.relative(meta_file(project, split_name), project)}); choose another --name, or pass --force")


def meta_file(project: Path, name: str) -> Path:
    return project / "data" / "meta" / f"{name}.json"


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # lone surrogates from undecodable cells, exotic types from parquet/excel
        return json.dumps(obj, ensure_ascii=True, default=str).encode()


def _tmp_for(final: Path) -> Path:
    """A hidden temp name next to ``final``, unique per process and call (so concurrent
    imports, even of the same name, never write into each other's temp files)."""
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


class _Sink:
    """A JSONL temp file renamed into place on commit (a crash leaves the old file intact)."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_for(final)
        self.fh = open(self.tmp, "wb", buffering=1 << 20)
        self.count = 0

    def write(self, obj: Any) -> None:
        self.fh.write(_dumps(obj) + b"\n")
        self.count += 1

    def rewrite(self, fn: Callable[[dict], dict]) -> None:
        self.fh.close()
        other = self.tmp.with_suffix(".rewrite")
        with open(self.tmp, "rb") as src, open(other, "wb") as dst:
            for line in src:
                dst.write(_dumps(fn(orjson.loads(line))) + b"\n")
        os.replace(other, self.tmp)
        self.fh = open(self.tmp, "ab", buffering=1 << 20)

    def commit(self) -> Path:
        self.fh.close()
        os.replace(self.tmp, self.final)
        return self.final

    def discard(self) -> None:
        self.fh.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def _resolve_format(fmt: str | None) -> str | None:
    if fmt is None or fmt == "auto":
        return None
    fmt = fmt.lower()
    aliases = {"messages": "openai", "chatml": "openai", "pt": "text", "dpo": "preference", "kto": "preference",
               "ranking": "preference", "exam": "mcq", "o1": "cot", "qa": "alpaca"}
    fmt = aliases.get(fmt, fmt)
    if fmt not in FORMATS:
        raise FactoryKitError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    return fmt


# --- conversion (stateless per record; runs in the main process or in a worker) -----------

def _build(config: dict[str, Any]) -> tuple[Any, FieldReader, Redactor | None]:
    normalizer = Normalizer(width=config["width_policy"], t2s=bool(config["t2s"]))
    redactor = Redactor(config["kinds"]) if config["kinds"] else None
    fields = FieldReader(normalizer, redactor)
    cls = TextImporter if config["fmt"] == "text" else IMPORTERS[config["fmt"]]
    importer = cls(fields, config["columns"], **config["importer"])
    return importer, fields, redactor


class _Converter:
    """RawRecord -> units: ("a", line, hash, key, row_bytes, bench_bytes, stratum, multi, orig, phys)
    for rows to accept (dedup and writing happen in the collector; ``phys`` is the physical line
    of an item-addressed row, else None) or ("r", line, kind, quarantine_bytes, message) for rejects."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.fmt = config["fmt"]
        self.importer, self.fields, self.redactor = _build(config)
        self.max_chars = config["max_chars"]
        self.dedup = config["dedup"]
        self.strat_key = config["strat_key"]
        self.is_alpaca = isinstance(self.importer, AlpacaImporter)
        self._src_json: dict[str, bytes] = {}
        self._fast = (self.is_alpaca and self.redactor is None and self.dedup in ("exact", "none")
                      and self.strat_key in (None, "source"))
        self._resolved = getattr(self.importer, "_resolved", {})
        self._norm = self.fields.normalize
        # Sources whose rows are addressed by JSON array element ("item N", minified arrays):
        # there a unit's ``line`` is the item number and ``self._phys`` the line it starts on.
        self.by_item: set[str] = set()
        self._phys: int | None = None

    def where(self, source: str, n: int) -> str:
        """Where row ``n`` of ``source`` is, as messages say it (duplicates name it)."""
        return f"{source} item {n}" if source in self.by_item else f"{source}:{n}"

    def reject(self, source: str, line: int, reason: str, kind: str, original: Any = None,
               raw: str | None = None, phys: int | None = None) -> tuple:
        if source in self.by_item:
            message = f"{source}: item {line}: {reason}"
            rec: dict[str, Any] = {"reason": reason, "kind": kind, "source": source,
                                   "line": phys if phys is not None else self._phys, "item": line, "message": message}
        else:
            message = f"{source}:{line}: {reason}"
            rec = {"reason": reason, "kind": kind, "source": source, "line": line, "message": message}
        if original is not None:
            rec["original"] = original
        else:
            rec["raw"] = raw
        return ("r", line, kind, _dumps(rec) + b"\n", message)

    def record(self, rec: files_mod.RawRecord, orig: Any = None) -> list[tuple]:
        line, self._phys = rec.line, None
        if rec.item is not None:
            self.by_item.add(rec.source)
            self._phys, line = rec.line, rec.item
        if rec.error is not None:
            return [self.reject(rec.source, line, rec.error, rec.kind, raw=rec.raw)]
        return self.record_obj(rec.obj, line, rec.source, orig)

    def fast_alpaca(self, obj: dict, line: int, source: str, orig: Any) -> tuple | None:
        """The common alpaca row (known keys, plain non-empty strings, no history, no
        redaction) without the general machinery; None means "take the general path".
        Produces exactly what record_obj would (tests compare the two paths)."""
        keys = self._resolved.get(tuple(obj))
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
        src = self._src_json.get(source)
        if src is None:
            src = self._src_json[source] = b',"source":' + orjson.dumps(source) + b',"source_row":'
        return ("a", line, h, None, b"%b%b%d}\n" % (body[:-1], src, line), None,
                source if self.strat_key else None, False, orig, self._phys)

    def record_obj(self, obj: dict, line: int, source: str, orig: Any = None) -> list[tuple]:
        if self._fast:
            u = self.fast_alpaca(obj, line, source, orig if orig is not None else obj)
            if u is not None:
                return [u]
        self.importer.current_line = line
        try:
            rows = self.importer.convert(obj)
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

    def row(self, row: dict[str, Any], source: str, line: int, original: Any, token: Any = None) -> tuple:
        """``original`` goes into a quarantine record made here; ``token`` (default: the
        original) travels with an accepted row in case the collector finds it a duplicate."""
        bench_row = row.pop("_benchmark", None) if self.fmt == "mcq" else None
        if "_line" in row:
            del row["_line"]
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
                return self.reject(source, line, f"row is {n:,} characters, over --max-chars {self.max_chars:,} "
                                   "(raise it, or 0 for no limit)", "too_long", original)
        try:
            body = orjson.dumps(row)
        except TypeError:
            body = _dumps(row)
        key = h = None
        if self.dedup == "exact":
            h = dedup_mod.json_key_hash(body)
        elif self.dedup == "near":
            key = dedup_mod.dedup_key(texts)
        src = self._src_json.get(source)
        if src is None:
            src = self._src_json[source] = b',"source":' + orjson.dumps(source) + b',"source_row":'
        data = b"%b%b%d}\n" % (body[:-1], src, line)
        if self.strat_key:
            stratum = source if self.strat_key == "source" else split_mod.stratum_of(row, self.strat_key)
        else:
            stratum = None
        return ("a", line, h, key, data, _dumps(bench_row) + b"\n" if bench_row else None,
                stratum, multi, original if token is None else token, self._phys)

    def flush(self, source: str) -> list[tuple]:
        if isinstance(self.importer, TextImporter):
            return [self.row(r, source, r.get("_line") or 0, {"text": r.get("text")}) for r in self.importer.flush()]
        return []


# --- parallel workers for large JSON Lines files ---------------------------------------------

_WORKER: _Converter | None = None


def _worker_init(config: dict[str, Any]) -> None:
    global _WORKER
    _WORKER = _Converter(config)


def _worker_chunk(chunk: bytes, first_line: int, source: str, encoding: str) -> dict[str, Any]:
    """Convert one block of JSON Lines; the result is packed (one bytes blob and int lists)
    so that handing it back to the main process costs little per row."""
    conv = _WORKER
    assert conv is not None
    before = Counter(conv.redactor.counts) if conv.redactor else Counter()
    notes_before = Counter(conv.importer.notes)
    blob: list[bytes] = []
    size = 0
    ends: list[int] = []
    lines: list[int] = []
    hashes: list[int] = []
    starts: list[int] = []
    stops: list[int] = []
    strata: list[Any] = []
    multi: list[int] = []
    rejects: list[tuple] = []
    utf8 = encoding in ("utf-8", "utf-8-sig")
    loads = orjson.loads
    fast = conv.fast_alpaca if conv._fast else None
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
            u = fast(obj, line, source, (pos, end)) if fast is not None else None
            if u is not None:  # the common case, without the loop below
                data = u[4]
                blob.append(data)
                size += len(data)
                ends.append(size)
                lines.append(line)
                hashes.append(u[2] if u[2] is not None else -1)
                starts.append(pos)
                stops.append(end)
                strata.append(u[6])
                pos = end
                continue
            units = conv.record_obj(obj, line, source, (pos, end))
        else:
            rec = files_mod.parse_jsonl_line(data, line, source, encoding)
            units = conv.record(rec, (pos, end)) if rec is not None else ()
        for u in units:
            if u[0] == "r":
                rejects.append((len(lines), u[3], u[2], u[4]))
                continue
            blob.append(u[4])
            size += len(u[4])
            ends.append(size)
            lines.append(u[1])
            hashes.append(u[2] if u[2] is not None else -1)
            starts.append(pos)
            stops.append(end)
            strata.append(u[6])
            if u[7]:
                multi.append(len(lines) - 1)
        pos = end
    delta = dict(conv.redactor.counts - before) if conv.redactor else {}
    notes = dict(conv.importer.notes - notes_before)
    return {"blob": b"".join(blob), "ends": ends, "lines": lines, "hashes": hashes, "starts": starts,
            "stops": stops, "strata": strata if conv.strat_key else None, "multi": multi,
            "rejects": rejects, "redactions": delta, "notes": notes}


def _parallel_units(path: Path, config: dict[str, Any], source: str, encoding: str, workers: int,
                    chunk_bytes: int = 4 << 20) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(packed result, chunk bytes) per chunk, in file order, at most 2 chunks per worker in
    flight (so memory stays bounded whatever the file size)."""
    import multiprocessing as mp
    from collections import deque

    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(config,)) as pool:
        pending: deque = deque()
        chunks = files_mod.jsonl_chunks(path, chunk_bytes)
        done = False
        while True:
            while not done and len(pending) < 2 * workers:
                item = next(chunks, None)
                if item is None:
                    done = True
                    break
                chunk, first = item
                pending.append((pool.apply_async(_worker_chunk, (chunk, first, source, encoding)), chunk))
            if not pending:
                break
            fut, chunk = pending.popleft()
            yield fut.get(), chunk


def _parallel_ok(fmt: str, opts: dict[str, Any], path: Any, encoding: str) -> int:
    """How many worker processes to use for this file (0: run in this process)."""
    workers = opts["workers"]
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    workers = int(workers)
    if workers < 2 or fmt not in ("alpaca", "cot", "sharegpt", "openai") or opts["dedup"] == "near" \
            or opts["limit"] or not isinstance(path, Path) or not path.is_file():
        return 0
    if path.stat().st_size < int(opts["parallel_min_bytes"]) or not files_mod.is_jsonl(path, encoding):
        return 0
    return workers


# --- the import ------------------------------------------------------------------------------

def import_source(path: str | Path, name: str, fmt: str | None = None, *, project: Path | None = None,
                  **options: Any) -> ImportReport:
    """Import PATH as dataset NAME; see the module docstring. Raises FactoryKitError."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise FactoryKitError(f"unknown import option(s): {', '.join(sorted(unknown))}")
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    if not _NAME.match(name or ""):
        raise FactoryKitError(f"--name {name!r}: use letters, digits, _ . - (e.g. tcm_qa)")
    project = Path(project) if project is not None else paths.project_dir()
    started = time.monotonic()
    fmt = _resolve_format(fmt)
    reader_hf = fmt == "hf"
    if reader_hf:
        fmt = None

    targets = files_mod.expand(path)
    kinds = parse_kinds(opts["redact"])
    columns = parse_columns(opts["columns"])
    if opts["dedup"] not in dedup_mod.DEDUP_MODES:
        raise FactoryKitError(f"--dedup {opts['dedup']!r}: choose one of {', '.join(dedup_mod.DEDUP_MODES)}")
    ratios = split_mod.parse_ratios(opts["split"]) if opts["split"] else None
    if not opts["force"]:
        _refuse_taking_over(project, name, [name + suffix for suffix in SPLIT_SUFFIX.values()] if ratios else [])
    max_chars = int(opts["max_chars"] or 0)
    limit = int(opts["limit"]) if opts["limit"] else None
    strat_key = opts["stratify"] if ratios else None
    if strat_key in (True, "true", "yes"):
        strat_key = "source"

    blank_rows: list[int] = []  # fully blank CSV/Excel rows the readers skipped (not rows)

    # -- sources as (path or None, display, record iterator, is_table, is_text) ----------------
    def open_sources() -> Iterator[tuple[Path | None, str, Iterator[files_mod.RawRecord], bool, bool]]:
        if isinstance(targets, str):  # hub id
            yield None, targets, files_mod.read_hf(targets, targets, opts["hf_split"]), False, False
            return
        for p in targets:
            src = files_mod.display(p)
            if reader_hf and not p.is_dir():
                raise FactoryKitError(f"{src}: --format hf expects a save_to_disk folder or a hub id")
            recs = files_mod.read(p, encoding=opts["encoding"], sheet=opts["sheet"], hf_split=opts["hf_split"],
                                  blank=blank_rows)
            yield p, src, recs, files_mod.from_table(p), files_mod.is_text_file(p)

    sources = open_sources()
    first = next(sources)
    # Peek at the first records to detect the format (kept and replayed, not re-read).
    peeked = list(itertools.islice(first[2], 200))
    first = (first[0], first[1], itertools.chain(peeked, first[2]), first[3], first[4])
    if columns and not first[4]:
        _check_columns(columns, [r.obj for r in peeked if isinstance(r.obj, dict)], first[1])
    if fmt is None:
        if first[4]:
            fmt = "text"
        else:
            objs = [r.obj for r in peeked if r.obj is not None]
            if columns:
                objs = [{**o, **{k: o[v] for k, v in columns.items() if v in o}} for o in objs]
            if not peeked:
                raise FactoryKitError(f"{first[1]}: no rows found (the file has no data rows)")
            fmt, _votes = detect(objs)
            if fmt is None:
                if not objs:
                    errs = [r.error for r in peeked if r.error]
                    why = f" (line {peeked[0].line}: {errs[0]})" if errs else ""
                    raise FactoryKitError(f"{first[1]}: no readable rows in the first {len(peeked)}{why}; "
                                          "is this the right file?")
                cols = sorted({k for o in objs[:20] for k in o if isinstance(k, str)})
                raise FactoryKitError(
                    f"{first[1]}: cannot tell the format from columns {cols[:12]}; name it with --format "
                    f"({', '.join(f for f in FORMATS if f != 'hf')}) and map columns with "
                    "--columns instruction=COL,output=COL")

    config = {
        "fmt": fmt, "width_policy": opts["width_policy"], "t2s": bool(opts["t2s"]), "kinds": kinds,
        "columns": columns, "max_chars": max_chars, "dedup": opts["dedup"], "strat_key": strat_key,
        "importer": {"name": name, "cot_style": opts["cot_style"], "chunk_chars": opts["chunk_chars"],
                     "chunk_tokens": opts["chunk_tokens"], "tokenizer": opts["tokenizer"]},
    }
    conv = _Converter(config)
    importer = conv.importer
    deduper = dedup_mod.make(opts["dedup"], float(opts["near_threshold"]), int(opts["near_ngram"]))

    out_path = data_file(project, name)
    q_path = quarantine_file(project, name)
    b_path = benchmark_file(project, name) if fmt == "mcq" else None
    bench_dev: Path | None = None
    previous = read_meta(project, name) or {}
    out = _Sink(out_path)
    quarantine = _Sink(q_path)
    bench = _Sink(b_path) if b_path is not None else None
    sinks = [s for s in (out, quarantine, bench) if s is not None]

    counts = Counter()  # accepted, quarantined, duplicates
    reasons: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    notes: Counter[str] = Counter()  # counts from worker processes (this process: importer.notes)
    examples: list[str] = []
    strata: Counter[str] = Counter()
    source_ids: dict[str, int] = {}
    source_names: list[str] = []
    progress = opts["progress"]
    state = {"multi": False, "records": 0}

    def take(units: list[tuple], source: str, original_of: Callable[[Any], Any]) -> None:
        sid = source_ids.get(source)
        if sid is None:
            sid = source_ids[source] = len(source_names)
            source_names.append(source)
        for u in units:
            if u[0] == "r":
                quarantine.fh.write(u[3])
                counts["quarantined"] += 1
                reasons[u[2]] += 1
                if len(examples) < 5:
                    examples.append(u[4])
                continue
            _, line, h, key, row_bytes, bench_bytes, stratum, multi, orig, phys = u
            if deduper is not None:
                hit = deduper.check(h if h is not None else key, (sid << 40) | line)
                if hit is not None:
                    if isinstance(hit, tuple):
                        first_loc, sim = hit
                        what = "exact duplicate" if sim >= 1.0 else f"near-duplicate (similarity {sim:.2f})"
                    else:
                        first_loc, what = hit, "exact duplicate"
                    where = conv.where(source_names[first_loc >> 40], first_loc & ((1 << 40) - 1))
                    r = conv.reject(source, line, f"{what} of {where}", "duplicate", original_of(orig),
                                    phys=phys)
                    quarantine.fh.write(r[3])
                    counts["quarantined"] += 1
                    counts["duplicates"] += 1
                    reasons["duplicate"] += 1
                    if len(examples) < 5:
                        examples.append(r[4])
                    continue
            if multi and not state["multi"]:
                state["multi"] = True
                importer.multi_turn = True
                if out.count:
                    out.rewrite(to_sharegpt)
            elif state["multi"] and not multi:
                row_bytes = _dumps(to_sharegpt(orjson.loads(row_bytes))) + b"\n"
            out.fh.write(row_bytes)
            out.count += 1
            counts["accepted"] += 1
            if bench_bytes is not None and bench is not None:
                bench.fh.write(bench_bytes)
            if stratum is not None:
                strata[stratum] += 1

    def same(x: Any) -> Any:
        return x

    def take_packed(packed: dict[str, Any], chunk: bytes, source: str) -> None:
        """Main-process side of a worker's block: dedup and write, mostly as whole slices."""
        if packed["multi"] or state["multi"] or (deduper is not None and not isinstance(deduper, dedup_mod.ExactDeduper)):
            blob, ends = packed["blob"], packed["ends"]
            units = []
            prev = 0
            for i, line in enumerate(packed["lines"]):
                h = packed["hashes"][i]
                units.append(("a", line, None if h == -1 else h, None, blob[prev:ends[i]], None,
                              packed["strata"][i] if packed["strata"] else None, i in packed["multi"],
                              (packed["starts"][i], packed["stops"][i]), None))
                prev = ends[i]
            for pos, qbytes, kind, message in reversed(packed["rejects"]):
                units.insert(pos, ("r", 0, kind, qbytes, message))
            take(units, source, lambda span: orjson.loads(chunk[span[0]:span[1]]))
            return
        sid = source_ids.get(source)
        if sid is None:
            sid = source_ids[source] = len(source_names)
            source_names.append(source)
        blob = memoryview(packed["blob"])
        ends, lines, hashes = packed["ends"], packed["lines"], packed["hashes"]
        strata_list = packed["strata"]
        rejects = packed["rejects"]
        seen = deduper._seen if deduper is not None else None
        qfh, ofh = quarantine.fh, out.fh
        ri = 0
        start = 0  # blob offset of the first accepted row not yet written
        prev = 0
        written = 0
        base = sid << 40
        for i in range(len(lines)):
            while ri < len(rejects) and rejects[ri][0] == i:
                _, qbytes, kind, message = rejects[ri]
                qfh.write(qbytes)
                counts["quarantined"] += 1
                reasons[kind] += 1
                if len(examples) < 5:
                    examples.append(message)
                ri += 1
            if seen is not None:
                h = hashes[i]
                first_loc = seen.get(h)
                if first_loc is None:
                    seen[h] = base | lines[i]
                else:
                    if prev > start:
                        ofh.write(blob[start:prev])
                    start = ends[i]
                    where = conv.where(source_names[first_loc >> 40], first_loc & ((1 << 40) - 1))
                    r = conv.reject(source, lines[i], f"exact duplicate of {where}", "duplicate",
                                    orjson.loads(chunk[packed["starts"][i]:packed["stops"][i]]))
                    qfh.write(r[3])
                    counts["quarantined"] += 1
                    counts["duplicates"] += 1
                    reasons["duplicate"] += 1
                    if len(examples) < 5:
                        examples.append(r[4])
                    prev = ends[i]
                    continue
            prev = ends[i]
            written += 1
            if strata_list is not None:
                strata[strata_list[i]] += 1
        if prev > start:
            ofh.write(blob[start:prev])
        for _, qbytes, kind, message in rejects[ri:]:
            qfh.write(qbytes)
            counts["quarantined"] += 1
            reasons[kind] += 1
            if len(examples) < 5:
                examples.append(message)
        out.count += written
        counts["accepted"] += written

    try:
        for p, src, records, is_table, is_text in itertools.chain([first], sources):
            conv.fields.numbers_as_text = is_table
            if isinstance(importer, TextImporter):
                importer.merge_records = is_text
            elif is_text:
                take([conv.reject(rec.source, rec.line, f"a plain-text file cannot be part of a {fmt} import; "
                                  "import it with --format text", "invalid", rec.obj, rec.raw) for rec in records],
                     src, same)
                continue
            encoding = files_mod.sniff_encoding(p, opts["encoding"]) if p is not None and p.is_file() else ""
            workers = _parallel_ok(fmt, opts, p, encoding)
            if workers:
                for packed, chunk in _parallel_units(p, config, src, encoding, workers):
                    take_packed(packed, chunk, src)
                    redactions.update(packed["redactions"])
                    notes.update(packed["notes"])
                    state["records"] += len(packed["lines"]) + len(packed["rejects"])
                    if progress is not None:
                        progress(state["records"], counts["accepted"], counts["quarantined"])
                continue
            for rec in records:
                state["records"] += 1
                if limit is not None and state["records"] > limit:
                    break
                if progress is not None and state["records"] % 10000 == 0:
                    progress(state["records"], counts["accepted"], counts["quarantined"])
                take(conv.record(rec), src, same)
            take(conv.flush(src), src, same)
        importer.finish()
    except BaseException:
        for s in sinks:
            s.discard()
        raise
    if conv.redactor is not None:
        redactions.update(conv.redactor.counts)
    notes.update(importer.notes)

    if strat_key and strat_key != "source" and counts["accepted"] and set(strata) <= {""}:
        # No accepted row gave the field a value: is it a typo (no row has it at all)?
        out.fh.flush()
        problem = _missing_stratify_field(out.tmp, strat_key, importer.text_fields)
        if problem is not None:
            for s in sinks:
                s.discard()
            raise FactoryKitError(problem)

    total = counts["accepted"] + counts["quarantined"]
    if counts["accepted"] == 0:
        out.discard()
        if bench is not None:
            bench.discard()
        if counts["quarantined"]:
            quarantine.commit()
            rel = os.path.relpath(q_path, project)
            raise FactoryKitError(f"{examples[0]}; no row accepted ({total} quarantined, every reason in {rel})")
        quarantine.discard()
        raise FactoryKitError(f"{path}: no rows found (the file has no data rows)")

    out.commit()
    if counts["quarantined"]:
        quarantine.commit()
        q_final: Path | None = q_path
    else:
        quarantine.discard()
        q_final = None
        if q_path.exists():
            q_path.unlink()  # stale rejects of an earlier import of this name
    if bench is not None:
        bench.commit()

    entry = importer.entry()
    _check_entry(entry, out_path)
    reg_dir = project / "dataset_info"
    entries = {name: {"file_name": registry.file_name_for(reg_dir, out_path), **entry}}
    split_counts: dict[str, int] = {}
    stale: list[str] = []
    if ratios:
        strata_counts = dict(strata) if strat_key else {"": counts["accepted"]}
        labels = split_mod.assign(strata_counts, ratios, int(opts["seed"]))
        split_paths = [data_file(project, name + SPLIT_SUFFIX[s]) if ratios[i] > 0 else None
                       for i, s in enumerate(split_mod.SPLIT_NAMES)]
        tmp_paths = [_tmp_for(p) if p else None for p in split_paths]
        row_labels = bytearray(counts["accepted"]) if bench is not None else None

        def on_row(i: int, label: int) -> None:
            if row_labels is not None:
                row_labels[i] = label

        written = split_mod.write_splits(out_path, tmp_paths, labels, strat_key, on_row)
        for i, s in enumerate(split_mod.SPLIT_NAMES):
            split_name = name + SPLIT_SUFFIX[s]
            final, tmp = split_paths[i], tmp_paths[i]
            if final is None or tmp is None or written[i] == 0:
                if tmp is not None and tmp.exists():
                    tmp.unlink()
                continue
            os.replace(tmp, final)
            stale_meta = meta_file(project, split_name)
            if stale_meta.exists():
                stale_meta.unlink()  # the name now holds a split of NAME, not its own import
            split_counts[s] = written[i]
            entries[split_name] = {"file_name": registry.file_name_for(reg_dir, final), **entry}
        if bench is not None and b_path is not None and row_labels is not None:
            if written[1] or written[2]:
                bench_dev = _split_benchmark(b_path, row_labels, written, project, name)
    # Splits an earlier import of NAME made and this one did not: remove their files and
    # entries (only those: a dataset imported on its own under such a name has its own meta).
    for split_name in previous.get("registered", []):
        if split_name == name or split_name in entries or read_meta(project, split_name) is not None:
            continue
        stale.append(split_name)
        p = data_file(project, split_name)
        if p.exists():
            p.unlink()
    multi_dropped = 0
    if b_path is not None:
        multi_dropped = _drop_multi_answer([b_path, bench_dev])
        if not b_path.exists():
            b_path = None
        if bench_dev is not None and not bench_dev.exists():
            bench_dev = None
    old_dev = previous.get("benchmark_dev")
    if old_dev and bench_dev is None and (project / old_dev).exists():
        (project / old_dev).unlink()  # few-shot items of an earlier split: now in the benchmark
    current = registry.load(reg_dir)
    stale = [n for n in stale if n in current and current[n].get("file_name", "").endswith(f"{n}.jsonl")]
    if stale:
        registry.unregister(reg_dir, stale)
    registry.register(reg_dir, entries)

    report = ImportReport(
        name=name, format=fmt, total=total, accepted=counts["accepted"], quarantined=counts["quarantined"],
        duplicates=counts["duplicates"], output=out_path, quarantine=q_final, registered=list(entries),
        redactions=dict(redactions) if kinds else {}, benchmark=b_path, project=project,
        benchmark_dev=bench_dev, multi_answer_dropped=multi_dropped, blank_rows=len(blank_rows),
        tool_call_text_dropped=notes[TOOL_TEXT_DROPPED], notes=_notes(notes),
        splits=split_counts, reasons=dict(reasons), examples=examples,
        sources=source_names if source_names else [str(path)], output_format=_output_format(entry),
        seconds=time.monotonic() - started)
    _write_meta(project, report, opts, kinds)
    return report


def _check_columns(columns: dict[str, str], objs: list[dict], source: str) -> None:
    """Every column --columns names must be a column of the file (of its first rows read)."""
    if not objs:
        return
    present = list(dict.fromkeys(k for o in objs for k in o if isinstance(k, str)))
    for name, col in columns.items():
        if col in present:
            continue
        hint = ""
        close = difflib.get_close_matches(col, present, n=1)
        if close:
            hint = f"; did you mean --columns {name}={close[0]}?"
        shown = ", ".join(present[:30]) + (f", ... ({len(present)} in all)" if len(present) > 30 else "")
        raise FactoryKitError(f"--columns {name}={col}: {source} has no column {col!r} (columns: {shown}){hint}")


def _missing_stratify_field(rows_file: Path, key: str, text_fields: tuple[str, ...] = ()) -> str | None:
    """The error for ``--stratify KEY`` when no written row has the field KEY (None when one
    has it); the choices listed are the fields of the written rows, label-like ones first."""
    short: dict[str, None] = {}
    rest: dict[str, None] = {}
    with open(rows_file, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            if key in row:
                return None
            for k, v in row.items():
                if k in ("source", "source_row") or k in short or k in rest:
                    continue
                if k in text_fields:
                    rest[k] = None
                elif (isinstance(v, str) and 0 < len(v) <= 64) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                    short[k] = None
                else:
                    rest[k] = None
    fields = [*short, "source", *(k for k in rest if k not in short)]
    hint = ""
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.75)
    if close:
        hint = f"; did you mean --stratify {close[0]}?"
    return f"--stratify {key}: no row has that field (fields: {', '.join(fields)}){hint}"


def _notes(counts: Counter) -> list[str]:
    """One line per thing done to the rows that the user should know about."""
    out = []
    n = counts[TOOL_TEXT_DROPPED]
    if n:
        out.append(f"{n} assistant turn{'s' if n != 1 else ''} had text next to tool_calls; the text was dropped "
                   "(LLaMA-Factory's function_call turn holds only the call)")
    return out


def _output_format(entry: dict[str, Any]) -> str:
    if entry.get("columns", {}).get("prompt") == "text" and len(entry["columns"]) == 1:
        return "pt"
    if entry.get("ranking"):
        return f"{entry['formatting']}+ranking"
    if "kto_tag" in entry.get("columns", {}):
        return "alpaca+kto"
    if entry.get("tags", {}).get("role_tag") == "role":
        return "sharegpt(openai)"
    return entry["formatting"]


def _check_entry(entry: dict[str, Any], out_path: Path) -> None:
    """Guard against a registry entry naming a column the rows do not have."""
    with open(out_path, "rb") as fh:
        row = orjson.loads(fh.readline())
    missing = [v for v in entry.get("columns", {}).values() if v not in row]
    if missing:  # pragma: no cover - a bug in an importer, not a user error
        raise FactoryKitError(f"{out_path}: internal error: registry columns {missing} not in the rows")


def dev_file(project: Path, name: str) -> Path:
    """Few-shot examples for a benchmark, as the evaluation reads them: ``NAME.dev.jsonl``."""
    return project / "data" / "benchmarks" / f"{name}.dev.jsonl"


def _drop_multi_answer(paths: list[Path | None]) -> int:
    """lm-eval's multiple_choice scores one gold answer per item, so multi-answer items (``"AC"``)
    stay in the SFT rows but leave the benchmark files; a file left empty is removed."""
    dropped = 0
    for path in paths:
        if path is None or not path.exists():
            continue
        kept = []
        with open(path, "rb") as fh:
            for line in fh:
                if len(str(orjson.loads(line).get("answer", ""))) > 1:
                    dropped += 1
                else:
                    kept.append(line)
        if kept:
            tmp = _tmp_for(path)
            tmp.write_bytes(b"".join(kept))
            os.replace(tmp, path)
        else:
            path.unlink()
    return dropped


def _split_benchmark(b_path: Path, labels: bytearray, written: list[int], project: Path, name: str) -> Path | None:
    """With a split, the benchmark holds only items the model is not trained on: the test
    items (or the val items when there is no test part) in ``NAME.jsonl``, and the val
    items as few-shot examples in ``NAME.dev.jsonl`` when there is a test part."""
    bench_label = 2 if written[2] else 1
    dev_label = 1 if written[2] and written[1] else None
    dev_path = dev_file(project, name)
    outs = {bench_label: b_path, **({dev_label: dev_path} if dev_label is not None else {})}
    tmps = {k: _tmp_for(p) for k, p in outs.items()}
    handles = {k: open(tmps[k], "wb") for k in outs}
    try:
        with open(b_path, "rb") as fh:
            for i, line in enumerate(fh):
                h = handles.get(labels[i])
                if h is not None:
                    h.write(line)
    finally:
        for h in handles.values():
            h.close()
    for k, p in outs.items():
        os.replace(tmps[k], p)
    return dev_path if dev_label is not None else None


def _write_meta(project: Path, report: ImportReport, opts: dict[str, Any], kinds: tuple[str, ...]) -> None:
    keep = {k: v for k, v in opts.items() if k not in ("progress", "force") and v != DEFAULTS.get(k)}
    if kinds:
        keep["redact"] = list(kinds)
    meta = {**report.to_json(), "options": keep}
    meta.pop("seconds", None)
    meta.pop("project", None)
    path = meta_file(project, report.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_for(path)
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_meta(project: Path, name: str) -> dict[str, Any] | None:
    path = meta_file(project, name)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
