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

import itertools
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from . import dedup as dedup_mod
from . import paths, registry
from . import split as split_mod
from .errors import FactoryKitError
from .pii import Redactor, parse_kinds
from .quality import FieldReader, Normalizer, RowError
from .sources import FORMATS, HINTS, IMPORTERS, detect, detect_row
from .sources import files as files_mod
from .sources.alpaca import AlpacaImporter, to_sharegpt
from .sources.text import TextImporter

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SPLIT_SUFFIX = {"train": "_train", "val": "_val", "test": "_test"}
DEFAULTS: dict[str, Any] = {
    "dedup": "exact", "near_threshold": 0.85, "near_ngram": 3, "redact": None, "split": None, "seed": 42,
    "stratify": None, "max_chars": 50000, "chunk_chars": None, "chunk_tokens": None, "tokenizer": None,
    "cot_style": "think", "t2s": False, "width_policy": "zh", "encoding": None, "columns": None,
    "sheet": None, "hf_split": None, "limit": None, "progress": None,
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
        return f"{self.name}: {self.accepted} accepted, {q} -> {self.rel(self.output)}"

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


def meta_file(project: Path, name: str) -> Path:
    return project / "data" / "meta" / f"{name}.json"


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # lone surrogates from undecodable cells, exotic types from parquet/excel
        return json.dumps(obj, ensure_ascii=True, default=str).encode()


class _Sink:
    """A JSONL temp file renamed into place on commit (a crash leaves the old file intact)."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
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
    normalizer = Normalizer(width=opts["width_policy"], t2s=bool(opts["t2s"]))
    kinds = parse_kinds(opts["redact"])
    redactor = Redactor(kinds) if kinds else None
    fields = FieldReader(normalizer, redactor)
    columns = parse_columns(opts["columns"])
    deduper = dedup_mod.make(opts["dedup"], float(opts["near_threshold"]), int(opts["near_ngram"]))
    ratios = split_mod.parse_ratios(opts["split"]) if opts["split"] else None
    max_chars = int(opts["max_chars"] or 0)
    limit = int(opts["limit"]) if opts["limit"] else None

    # -- sources as (display, record iterator, is_table, is_text) ------------------------
    def open_sources() -> Iterator[tuple[str, Iterator[files_mod.RawRecord], bool, bool]]:
        if isinstance(targets, str):  # hub id
            yield targets, files_mod.read_hf(targets, targets, opts["hf_split"]), False, False
            return
        for p in targets:
            src = files_mod.display(p)
            if reader_hf and not p.is_dir():
                raise FactoryKitError(f"{src}: --format hf expects a save_to_disk folder or a hub id")
            recs = files_mod.read(p, encoding=opts["encoding"], sheet=opts["sheet"], hf_split=opts["hf_split"])
            yield src, recs, files_mod.from_table(p), files_mod.is_text_file(p)

    sources = open_sources()
    first = next(sources)
    # Peek at the first records to detect the format (kept and replayed, not re-read).
    peeked = list(itertools.islice(first[1], 200))
    first = (first[0], itertools.chain(peeked, first[1]), first[2], first[3])
    if fmt is None:
        if first[3]:
            fmt = "text"
        else:
            objs = [r.obj for r in peeked if r.obj is not None]
            if columns:
                objs = [{**o, **{k: o[v] for k, v in columns.items() if v in o}} for o in objs]
            fmt, votes = detect(objs)
            if fmt is None:
                if not objs:
                    errs = [r.error for r in peeked if r.error]
                    why = f" (line {peeked[0].line}: {errs[0]})" if errs else ""
                    raise FactoryKitError(f"{first[0]}: no readable rows in the first {len(peeked)}{why}; "
                                          "is this the right file?")
                cols = sorted({k for o in objs[:20] for k in o if isinstance(k, str)})
                raise FactoryKitError(
                    f"{first[0]}: cannot tell the format from columns {cols[:12]}; name it with --format "
                    f"({', '.join(f for f in FORMATS if f != 'hf')}) and map columns with "
                    "--columns instruction=COL,output=COL")

    importer_opts = {"name": name, "cot_style": opts["cot_style"], "chunk_chars": opts["chunk_chars"],
                     "chunk_tokens": opts["chunk_tokens"], "tokenizer": opts["tokenizer"]}
    if fmt == "text":
        importer = TextImporter(fields, columns, **importer_opts)
    else:
        importer = IMPORTERS[fmt](fields, columns, **importer_opts)

    out_path = data_file(project, name)
    q_path = quarantine_file(project, name)
    b_path = benchmark_file(project, name) if fmt == "mcq" else None
    out = _Sink(out_path)
    quarantine = _Sink(q_path)
    bench = _Sink(b_path) if b_path is not None else None
    sinks = [s for s in (out, quarantine, bench) if s is not None]

    counts = Counter()  # accepted, quarantined, duplicates
    reasons: Counter[str] = Counter()
    examples: list[str] = []
    strata: Counter[str] = Counter()
    strat_key = opts["stratify"] if ratios else None
    if strat_key in (True, "true", "yes"):
        strat_key = "source"
    source_ids: dict[str, int] = {}
    source_names: list[str] = []
    progress = opts["progress"]
    n_records = 0
    is_alpaca = isinstance(importer, AlpacaImporter)

    def reject(source: str, line: int, reason: str, kind: str, original: Any = None, raw: str | None = None) -> None:
        message = f"{source}:{line}: {reason}"
        rec: dict[str, Any] = {"reason": reason, "kind": kind, "source": source, "line": line, "message": message}
        if original is not None:
            rec["original"] = original
        else:
            rec["raw"] = raw
        quarantine.write(rec)
        counts["quarantined"] += 1
        reasons[kind] += 1
        if kind == "duplicate":
            counts["duplicates"] += 1
        if len(examples) < 5:
            examples.append(message)

    def accept(row: dict[str, Any], source: str, line: int, original: Any) -> None:
        bench_row = row.pop("_benchmark", None)
        row.pop("_line", None)
        if is_alpaca:
            was = importer.multi_turn
            row = importer.finalize(row)
            if importer.multi_turn and not was and out.count:
                out.rewrite(to_sharegpt)
        texts = importer.texts(row)
        if max_chars:
            n = sum(len(t) for t in texts)
            if n > max_chars:
                reject(source, line, f"row is {n:,} characters, over --max-chars {max_chars:,} "
                       "(raise it, or 0 for no limit)", "too_long", original)
                return
        sid = source_ids.get(source)
        if sid is None:
            sid = source_ids[source] = len(source_names)
            source_names.append(source)
        if deduper is not None:
            loc = (sid << 40) | line
            hit = deduper.check(dedup_mod.dedup_text(texts), loc)
            if hit is not None:
                if isinstance(hit, tuple):
                    first_loc, sim = hit
                    what = "exact duplicate" if sim >= 1.0 else f"near-duplicate (similarity {sim:.2f})"
                else:
                    first_loc, what = hit, "exact duplicate"
                where = f"{source_names[first_loc >> 40]}:{first_loc & ((1 << 40) - 1)}"
                reject(source, line, f"{what} of {where}", "duplicate", original)
                return
        row["source"] = source
        row["source_row"] = line
        out.write(row)
        counts["accepted"] += 1
        if bench is not None and bench_row is not None:
            bench.write(bench_row)
        if strat_key:
            strata[split_mod.stratum_of(row, strat_key)] += 1

    try:
        for src, records, is_table, is_text in itertools.chain([first], sources):
            fields.numbers_as_text = is_table
            if isinstance(importer, TextImporter):
                importer.merge_records = is_text
            elif is_text:
                for rec in records:
                    reject(rec.source, rec.line, f"a plain-text file cannot be part of a {fmt} import; "
                           "import it with --format text", "invalid", rec.obj, rec.raw)
                continue
            for rec in records:
                n_records += 1
                if limit is not None and n_records > limit:
                    break
                if progress is not None and n_records % 10000 == 0:
                    progress(n_records, counts["accepted"], counts["quarantined"])
                if rec.error is not None:
                    reject(rec.source, rec.line, rec.error, rec.kind, raw=rec.raw)
                    continue
                importer.current_line = rec.line
                try:
                    rows = importer.convert(rec.obj)
                except RowError as exc:
                    reason, kind = exc.reason, exc.kind
                    if kind == "missing":
                        other = detect_row(rec.obj.keys())
                        if other and other != fmt:
                            reason = (f"row is {other} ({HINTS[other]}), not {fmt}: {reason}; "
                                      f"import it separately with --format {other}")
                            kind = "format"
                    reject(rec.source, rec.line, reason, kind, rec.obj)
                    continue
                for row in rows:
                    line = row.get("_line") or rec.line
                    accept(row, rec.source, line, rec.obj if len(rows) == 1 and not is_text else {"text": row.get("text")})
            if isinstance(importer, TextImporter):
                for row in importer.flush():
                    accept(row, src, row.get("_line") or 0, {"text": row.get("text")})
        importer.finish()
    except BaseException:
        for s in sinks:
            s.discard()
        raise

    total = counts["accepted"] + counts["quarantined"]
    if counts["accepted"] == 0:
        out.discard()
        if bench is not None:
            bench.discard()
        if counts["quarantined"]:
            quarantine.commit()
            rel = os.path.relpath(q_path, project)
            raise FactoryKitError(f"{examples[0]} (and every other row: 0 of {total} accepted; all reasons in {rel})")
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
        tmp_paths = [p.with_name(f".{p.name}.{os.getpid()}.tmp") if p else None for p in split_paths]
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
                stale.append(split_name)
                if final is not None and final.exists():
                    final.unlink()
                continue
            os.replace(tmp, final)
            split_counts[s] = written[i]
            entries[split_name] = {"file_name": registry.file_name_for(reg_dir, final), **entry}
        if bench is not None and b_path is not None and row_labels is not None:
            _split_benchmark(b_path, row_labels, project, name)
    else:
        for s in split_mod.SPLIT_NAMES:
            split_name = name + SPLIT_SUFFIX[s]
            p = data_file(project, split_name)
            if p.exists():
                p.unlink()
                stale.append(split_name)
    current = registry.load(reg_dir)
    stale = [n for n in stale if n in current and current[n].get("file_name", "").endswith(f"{n}.jsonl")]
    if stale:
        registry.unregister(reg_dir, stale)
    registry.register(reg_dir, entries)

    report = ImportReport(
        name=name, format=fmt, total=total, accepted=counts["accepted"], quarantined=counts["quarantined"],
        duplicates=counts["duplicates"], output=out_path, quarantine=q_final, registered=list(entries),
        redactions=dict(redactor.counts) if redactor else {}, benchmark=b_path, project=project,
        splits=split_counts, reasons=dict(reasons), examples=examples,
        sources=source_names if source_names else [str(path)], output_format=_output_format(entry),
        seconds=time.monotonic() - started)
    _write_meta(project, report, opts, kinds)
    return report


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


def _split_benchmark(b_path: Path, labels: bytearray, project: Path, name: str) -> None:
    """Held-out benchmark items: data/benchmarks/NAME_val.jsonl and NAME_test.jsonl."""
    outs = {1: benchmark_file(project, f"{name}_val"), 2: benchmark_file(project, f"{name}_test")}
    handles = {k: open(p.with_name(f".{p.name}.tmp"), "wb") for k, p in outs.items()}
    used = Counter()
    try:
        with open(b_path, "rb") as fh:
            for i, line in enumerate(fh):
                h = handles.get(labels[i])
                if h is not None:
                    h.write(line)
                    used[labels[i]] += 1
    finally:
        for h in handles.values():
            h.close()
    for k, p in outs.items():
        tmp = p.with_name(f".{p.name}.tmp")
        if used[k]:
            os.replace(tmp, p)
        else:
            tmp.unlink()
            if p.exists():
                p.unlink()


def _write_meta(project: Path, report: ImportReport, opts: dict[str, Any], kinds: tuple[str, ...]) -> None:
    keep = {k: v for k, v in opts.items() if k != "progress" and v != DEFAULTS.get(k)}
    if kinds:
        keep["redact"] = list(kinds)
    meta = {**report.to_json(), "options": keep}
    meta.pop("seconds", None)
    meta.pop("project", None)
    path = meta_file(project, report.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
