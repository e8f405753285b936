"""What an import reads, decided before a row is converted.

A folder (a hub snapshot, a repository's ``data/``) holds data files and files beside them
(README.md, LICENSE, .gitattributes, images): the data files are imported, each by its own
shape (detected from its first rows, majority vote), the others skipped with a note. One
import makes one dataset with one registry entry, so files whose shapes cannot share one
(QA rows and preference pairs) are refused, naming the files of each shape. A ``.txt``/``.md``
file that is JSON Lines (MedicalGPT's ``medical_corpus.txt``) is read as JSON Lines; the
import says so.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory_kit.core.errors import FactoryKitError
from factory_kit.data import readers
from factory_kit.data.formats import DATASET_SHAPE, FORMATS, IMPORTERS, detect

PEEK = 200  # rows of a file its format is detected from


@dataclass
class Plan:
    """``fmt``: the dataset's format when decided here (a folder), else None (detected from the
    first file's rows as for one file); ``formats``: each file's own format; ``notes``: what the
    import should tell the user (files skipped, .txt files read as JSON Lines)."""

    fmt: str | None = None
    formats: dict[Path, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def of(self, path: Path | None) -> str | None:
        return self.formats.get(path) if path is not None else None


def _names(items: list[str], most: int = 5) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def unknown_format(source: str, objs: list[dict]) -> FactoryKitError:
    """The error for rows whose format no importer recognises."""
    cols = sorted({k for o in objs[:20] for k in o if isinstance(k, str)})
    return FactoryKitError(
        f"{source}: cannot tell the format from columns {cols[:12]}; name it with --format "
        f"({', '.join(f for f in FORMATS if f != 'hf')}) and map columns with "
        "--columns instruction=COL,output=COL")


def file_format(path: Path, opts: dict[str, Any], columns: dict[str, str]) -> str | None:
    """The format of one file from its first rows; None when it has no readable row (its rows
    are then quarantined with their own reasons under the folder's format)."""
    if readers.is_text_file(path):
        return "text"
    records = readers.read(path, encoding=opts.get("encoding"), sheet=opts.get("sheet"),
                           hf_split=opts.get("hf_split"), blank=[])
    try:
        objs = [r.obj for r in itertools.islice(records, PEEK) if isinstance(r.obj, dict)]
    except FactoryKitError:
        return None  # unreadable as a whole: the import reports it when it gets there
    finally:
        records.close()  # type: ignore[attr-defined]
    if columns:
        objs = [{**o, **{k: o[v] for k, v in columns.items() if v in o}} for o in objs]
    if not objs:
        return None
    found, _ = detect(objs)
    if found is None:
        raise unknown_format(readers.display(path), objs)
    return found


def plan(spec: str | Path, targets: list[Path] | str, fmt: str | None, opts: dict[str, Any],
         columns: dict[str, str]) -> Plan:
    """How to read ``targets`` (what :func:`readers.expand` gave for ``spec``) with ``--format``
    ``fmt`` (None: detect). Raises FactoryKitError for a folder whose shapes cannot be one dataset."""
    out = Plan()
    if isinstance(targets, str) or fmt == "hf":
        return out
    disguised = [readers.display(p) for p in targets if readers.disguised_jsonl(p)]
    if disguised:
        one = len(disguised) == 1
        out.notes.append(f"{_names(disguised)} {'holds' if one else 'hold'} JSON Lines (one JSON object per line): "
                         "read as JSON Lines, not as plain text")
    folder = Path(spec)
    if not folder.is_dir() or readers.is_datasets_folder(folder):
        return out
    _, skipped = readers.scan_folder(folder)
    if skipped:
        out.notes.append(f"skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''} that "
                         f"{'are' if len(skipped) != 1 else 'is'} not data: {_names(skipped)}")
    formats = {p: fmt if fmt is not None else file_format(p, opts, columns) for p in targets}
    by_shape: dict[str, list[Path]] = {}
    for p, f in formats.items():
        if f is not None:
            by_shape.setdefault(DATASET_SHAPE.get(f, f), []).append(p)
    if len(by_shape) > 1:
        parts = "; ".join(f"{shape}: {_names([str(p.relative_to(folder)) for p in files], 4)}"
                          for shape, files in by_shape.items())
        raise FactoryKitError(
            f"{spec}: its files cannot make one dataset ({parts}); import them separately, one "
            "`factory-kit data import FILE --name NAME` per shape (or move them into one folder per shape)")
    used = {f for f in formats.values() if f is not None}
    if not used:
        return out  # no file with a readable row: the first file's rows say why
    out.fmt = next(f for f in IMPORTERS if f in used)  # the most specific (cot before alpaca)
    out.formats = {p: f if f is not None else out.fmt for p, f in formats.items()}
    return out
