"""``factory-kit data import``: any medical source -> ``data/NAME.jsonl`` + dataset_info.json.

One streaming pass: read (:mod:`.readers`, one module per file type) -> convert + validate
(:mod:`.formats`, one importer per row shape, driven by :mod:`.convert`; large JSON Lines
files in worker processes, :mod:`.parallel`) -> normalise / redact (quality, pii) -> length
check -> dedup, write accepted rows and quarantine the rest with their reason (:mod:`.collect`).
Then, when asked, a second streaming pass splits train/val/test and holds the benchmark out
(:mod:`.finish`). Every output is a temp file until the end, when all of them and the registry
entries are put in place in one step (:mod:`.commit`); Ctrl-C or SIGTERM before that changes
nothing. Where the files live: :mod:`.store`.

Invariant: every input unit is accepted or quarantined (``accepted + quarantined ==
total``); duplicates are quarantined too, so ``duplicates <= quarantined``. For text
imports a unit is a chunk. Nothing is held in memory but one hash per accepted row.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core import interrupts, io, paths, progress
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import commit, finish, parallel, readers, store
from factory_kit.data import dedup as dedup_mod
from factory_kit.data import detect as detect_mod
from factory_kit.data import split as split_mod
from factory_kit.data.collect import Collector
from factory_kit.data.convert import ConvertConfig, Converter
from factory_kit.data.formats import FORMATS, detect
from factory_kit.data.formats.conversation import TOOL_TEXT_DROPPED
from factory_kit.data.formats.text import TextImporter
from factory_kit.data.pii import parse_kinds
from factory_kit.data.store import benchmark_file, data_file, quarantine_file

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULTS: dict[str, Any] = {
    "dedup": "exact", "near_threshold": 0.85, "near_ngram": 3, "redact": None, "split": None, "seed": 42,
    "stratify": None, "max_chars": 50000, "chunk_chars": None, "chunk_tokens": None, "tokenizer": None,
    "cot_style": "think", "t2s": False, "width_policy": "zh", "encoding": None, "columns": None,
    "sheet": None, "hf_split": None, "limit": None, "progress": None, "workers": None, "force": False,
    "parallel_min_bytes": 16 << 20,
}
PROGRESS_EVERY = 4096  # records between progress updates (never per row)


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
    cleaned: str | None = None  # what this import cleaned up first (temp files of killed imports), one line
    interrupted: bool = False  # Ctrl-C came during the commit, which completed

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

    @property
    def held_out(self) -> str | None:
        """The split the benchmark holds, not trained on (test, else val); None without a split."""
        return finish.held_out(self.splits)

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


# (path or None for a hub id, name shown, records, cells are untyped text, plain-text file)
Source = tuple[Path | None, str, Iterator[readers.RawRecord], bool, bool]


def _open_sources(targets: list[Path] | str, opts: dict[str, Any], hf_only: bool,
                  blank_rows: list[int]) -> Iterator[Source]:
    """The sources to read, opened one by one; fully blank CSV/Excel rows go to ``blank_rows``."""
    if isinstance(targets, str):  # hub id
        yield None, targets, readers.read_hf(targets, targets, opts["hf_split"]), False, False
        return
    for p in targets:
        src = readers.display(p)
        if hf_only and not p.is_dir():
            raise FactoryKitError(f"{src}: --format hf expects a save_to_disk folder or a hub id")
        recs = readers.read(p, encoding=opts["encoding"], sheet=opts["sheet"], hf_split=opts["hf_split"],
                            blank=blank_rows)
        yield p, src, recs, readers.from_table(p), readers.is_text_file(p)


def _detect_format(first: Source, fmt: str | None, columns: dict[str, str]) -> tuple[Source, str]:
    """The first source (its first records peeked at, kept and replayed, not re-read) and the
    format: as given, or detected from those records."""
    p, src, records, is_table, is_text = first
    peeked = list(itertools.islice(records, 200))
    first = (p, src, itertools.chain(peeked, records), is_table, is_text)
    if columns and not is_text:
        _check_columns(columns, [r.obj for r in peeked if isinstance(r.obj, dict)], src)
    if fmt is not None:
        return first, fmt
    if is_text:
        return first, "text"
    objs = [r.obj for r in peeked if r.obj is not None]
    if columns:
        objs = [{**o, **{k: o[v] for k, v in columns.items() if v in o}} for o in objs]
    if not peeked:
        raise FactoryKitError(f"{src}: no rows found (the file has no data rows)")
    found, _votes = detect(objs)
    if found is not None:
        return first, found
    if not objs:
        errs = [r.error for r in peeked if r.error]
        why = f" (line {peeked[0].line}: {errs[0]})" if errs else ""
        raise FactoryKitError(f"{src}: no readable rows in the first {len(peeked)}{why}; is this the right file?")
    raise detect_mod.unknown_format(src, objs)


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


class _Progress:
    """Records read so far, on the progress bar and to an optional ``progress`` callback
    (records, accepted, quarantined); called per block of records, never per row."""

    def __init__(self, bar: progress.Bar, callback: Callable[[int, int, int], None] | None, collector: Collector):
        self.bar, self.callback, self.collector = bar, callback, collector
        self.records = 0

    def show(self) -> None:
        self.bar.update(completed=self.records)
        if self.callback is not None:
            self.callback(self.records, self.collector.accepted, self.collector.quarantined)


def _feed(collector: Collector, sources: Iterator[Source], opts: dict[str, Any],
          shown: _Progress, plan: detect_mod.Plan) -> tuple[Counter, Counter]:
    """Every record of every source, in order, through the converter into the collector (large
    JSON Lines files through worker processes). Returns the redactions and notes counted in
    worker processes (this process's are on the converter's redactor and importer)."""
    conv = collector.conv
    importer = conv.importer
    limit = int(opts["limit"]) if opts["limit"] else None
    redactions: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for p, src, records, is_table, is_text in sources:
        conv.use(plan.of(p))  # a folder import reads each file by its own format
        importer = conv.importer
        conv.fields.numbers_as_text = is_table
        if isinstance(importer, TextImporter):
            importer.merge_records = is_text
        elif is_text:
            collector.take([conv.reject(rec.source, rec.line, f"a plain-text file cannot be part of a {conv.fmt} "
                                        "import; import it with --format text", "invalid", rec.obj, rec.raw)
                            for rec in records], src)
            continue
        encoding = readers.sniff_encoding(p, opts["encoding"]) if p is not None and p.is_file() else ""
        workers = parallel.worker_count(conv.fmt, opts, p, encoding)
        if workers:
            for packed, chunk in parallel.blocks(p, conv.config, src, encoding, workers):  # type: ignore[arg-type]
                collector.take_packed(packed, chunk, src)
                redactions.update(packed.redactions)
                notes.update(packed.notes)
                shown.records += len(packed)
                shown.show()
                interrupts.pause_point("read")
            continue
        block: list = []  # near dedup sketches blocks of rows at once (numpy)
        for rec in records:
            shown.records += 1
            if limit is not None and shown.records > limit:
                break
            if shown.records % PROGRESS_EVERY == 0:
                shown.show()
                interrupts.pause_point("read")
            block += conv.record(rec)
            if len(block) >= (1024 if opts["dedup"] == "near" else 1):
                collector.take(block, src)
                block = []
        collector.take(block + conv.flush(src), src)
        shown.show()
    conv.finish()
    return redactions, notes


def _estimate_rows(targets: list[Path] | str, limit: int | None) -> int | None:
    """A progress bar's total: only worked out when a bar shows (it costs a pass over the files)."""
    if limit or not progress.enabled() or isinstance(targets, str):
        return limit
    counts = [readers.estimate_rows(p) for p in targets]
    return None if any(n is None for n in counts) else sum(counts)  # type: ignore[arg-type]


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
    hf_only = fmt == "hf"
    targets = readers.expand(path)
    kinds = parse_kinds(opts["redact"])
    columns = parse_columns(opts["columns"])
    if opts["dedup"] not in dedup_mod.DEDUP_MODES:
        raise FactoryKitError(f"--dedup {opts['dedup']!r}: choose one of {', '.join(dedup_mod.DEDUP_MODES)}")
    ratios = split_mod.parse_ratios(opts["split"]) if opts["split"] else None
    cleaned = commit.clean_stale(project)  # first: what an earlier import left decides who owns a name
    if not opts["force"]:
        store.refuse_taking_over(project, name, store.split_names(name) if ratios else [])
    strat_key = opts["stratify"] if ratios else None
    if strat_key in (True, "true", "yes"):
        strat_key = "source"

    with interrupts.terminate_as_interrupt():  # SIGTERM cleans up like Ctrl-C
        outputs = commit.Outputs(project, name)
        try:
            report = _run(path, targets, name, fmt, hf_only, opts, project, kinds, columns, ratios, strat_key,
                          outputs, started)
        except BaseException as exc:
            outputs.discard()
            if isinstance(exc, KeyboardInterrupt) and outputs.committed:
                exc.committed = True  # type: ignore[attr-defined]  # came just after the commit: it is done
            raise
    report.cleaned = cleaned
    return report


def _run(path: str | Path, targets: list[Path] | str, name: str, fmt: str | None, hf_only: bool,
         opts: dict[str, Any], project: Path, kinds: tuple[str, ...], columns: dict[str, str],
         ratios: tuple[float, float, float] | None, strat_key: str | None, outputs: commit.Outputs,
         started: float) -> ImportReport:
    """The import proper: every output staged in ``outputs``, then committed together."""
    blank_rows: list[int] = []  # fully blank CSV/Excel rows the readers skipped (not rows)
    plan = detect_mod.plan(path, targets, fmt, opts, columns)  # a folder: each file's format, files skipped
    sources = _open_sources(targets, opts, hf_only, blank_rows)
    first, fmt = _detect_format(next(sources), plan.fmt or (None if hf_only else fmt), columns)
    conv = Converter(ConvertConfig(
        fmt=fmt, width_policy=opts["width_policy"], t2s=bool(opts["t2s"]), kinds=kinds, columns=columns,
        max_chars=int(opts["max_chars"] or 0), dedup=opts["dedup"], strat_key=strat_key,
        near_threshold=float(opts["near_threshold"]), near_ngram=int(opts["near_ngram"]),
        importer={"name": name, "cot_style": opts["cot_style"], "chunk_chars": opts["chunk_chars"],
                  "chunk_tokens": opts["chunk_tokens"], "tokenizer": opts["tokenizer"]}))
    deduper = dedup_mod.make(opts["dedup"], float(opts["near_threshold"]), int(opts["near_ngram"]))
    previous = store.read_meta(project, name) or {}
    collector = Collector(conv, deduper, data_file(project, name), quarantine_file(project, name),
                          benchmark_file(project, name) if fmt == "mcq" else None)
    try:
        total = _estimate_rows(targets, int(opts["limit"]) if opts["limit"] else None)
        with progress.bar(f"importing {name}", total=total, unit="rows") as bar:
            redactions, notes = _feed(collector, itertools.chain([first], sources), opts,
                                      _Progress(bar, opts["progress"], collector), plan)
        if strat_key and strat_key != "source" and collector.accepted and set(collector.strata) <= {""}:
            # No accepted row gave the field a value: is it a typo (no row has it at all)?
            collector.out.flush()
            problem = finish.stratify_problem(collector.out.tmp, strat_key, conv.importer.text_fields)
            if problem is not None:
                raise FactoryKitError(problem)
        quarantine = collector.stage(outputs, project, str(path))
    except BaseException:
        collector.discard()
        raise
    if conv.redactor is not None:
        redactions.update(conv.redactor.counts)
    notes.update(conv.notes())

    entry = conv.entry()
    done = finish.register_import(
        project, name, entry, outputs, collector.out.final, ratios=ratios, seed=int(opts["seed"]),
        strat_key=strat_key, strata=collector.strata, accepted=collector.accepted,
        bench_path=collector.bench.final if collector.bench else None, previous=previous)
    report = ImportReport(
        name=name, format=fmt, total=collector.total, accepted=collector.accepted, quarantined=collector.quarantined,
        duplicates=collector.duplicates, output=collector.out.final, quarantine=quarantine,
        registered=list(done.entries), redactions=dict(redactions) if kinds else {}, benchmark=done.benchmark,
        project=project, benchmark_dev=done.benchmark_dev, multi_answer_dropped=done.multi_answer_dropped,
        blank_rows=len(blank_rows), tool_call_text_dropped=notes[TOOL_TEXT_DROPPED],
        notes=plan.notes + finish.note_lines(notes),
        splits=done.splits, reasons=dict(collector.reasons), examples=collector.examples,
        sources=collector.source_names if collector.source_names else [str(path)],
        output_format=finish.output_format(entry), seconds=time.monotonic() - started)
    meta = store.meta_file(project, name)
    tmp = outputs.temp(meta)
    io.write_json(tmp, _meta(report, opts, kinds))
    outputs.put(meta, tmp)
    report.interrupted = outputs.commit()
    return report


def _meta(report: ImportReport, opts: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """What ``data/meta/NAME.json`` records: the report and the options that differ from the defaults."""
    keep = {k: v for k, v in opts.items() if k not in ("progress", "force") and v != DEFAULTS.get(k)}
    if kinds:
        keep["redact"] = list(kinds)
    meta = {**report.to_json(), "options": keep}
    for key in ("seconds", "project", "cleaned", "interrupted"):
        meta.pop(key, None)
    return meta
