"""Readers: turn a file (or a datasets folder / hub id) into a stream of raw records, one module
per family of file types: JSON Lines / JSON (:mod:`.jsonfiles`), CSV / TSV (:mod:`.csvfiles`),
plain text (:mod:`.textfiles`), Parquet / Arrow / Excel / datasets (:mod:`.columnar`). What they
share (the record type, suffixes, encodings) is in :mod:`.base`; this module picks the reader.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.readers.base import (ARROW_EXT, CSV_EXT, EXCEL_EXT, JSON_EXT, JSONL_EXT, NOT_DATA, PARQUET_EXT,
                                           SUPPORTED, SUPPORTED_TEXT, TEXT_EXT, UNDECODABLE, RawRecord,
                                           base_suffix, count_lines, display, sniff_encoding)
from factory_kit.data.readers.columnar import is_datasets_folder, read_arrow, read_excel, read_hf, read_parquet
from factory_kit.data.readers.csvfiles import read_csv
from factory_kit.data.readers.jsonfiles import (jsonl_chunks, looks_like_jsonl, parse_jsonl_line, read_json, read_jsonl,
                                                text_is_jsonl)
from factory_kit.data.readers.textfiles import read_text_paragraphs

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def expand(path_spec: str | Path) -> list[Path] | str:
    """Files to read for PATH: one file, every supported file under a folder, or a hub id."""
    path = Path(path_spec)
    if not path.exists():
        if isinstance(path_spec, str) and _HUB_ID.match(path_spec) and not path.suffix:
            return path_spec  # a Hugging Face hub id
        raise FactoryKitError(f"{path_spec}: no such file or folder")
    if path.is_dir():
        if is_datasets_folder(path):
            return [path]
        files, _ = scan_folder(path)
        if not files:
            raise FactoryKitError(f"{path_spec}: folder has no files to import ({SUPPORTED_TEXT})")
        return files
    if base_suffix(path) not in SUPPORTED:
        hint = {".xls": "; save it as .xlsx or CSV", ".doc": "; save it as .txt", ".docx": "; save it as .txt",
                ".pdf": "; extract the text to .txt first"}.get(base_suffix(path), "")
        raise FactoryKitError(f"{path_spec}: unsupported file type {path.suffix or '(none)'}{hint}; "
                              f"supported: {SUPPORTED_TEXT}")
    if path.stat().st_size == 0:
        raise FactoryKitError(f"{path_spec}: file is empty")
    return [path]


def scan_folder(path: Path) -> tuple[list[Path], list[str]]:
    """(data files, other files) of a folder, both sorted. Data files: a supported type, not
    hidden, not a README/LICENSE... (:data:`NOT_DATA`; those count as data only when the folder
    has nothing else). Other files are named relative to the folder; hidden folders (``.git``)
    are not looked into."""
    data: list[Path] = []
    named: list[Path] = []  # README.md and the like: supported types, but not data
    other: list[Path] = []
    for root, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            p = Path(root, name)
            if name.startswith(".") or base_suffix(p) not in SUPPORTED or not p.is_file():
                other.append(p)
            elif NOT_DATA.match(name):
                named.append(p)
            else:
                data.append(p)
    if not data:
        data, named = named, []
    return sorted(data), ["/".join(p.relative_to(path).parts) for p in sorted(other + named)]


def read(path: Path, *, encoding: str | None = None, sheet: str | None = None,
         hf_split: str | None = None, blank: list[int] | None = None) -> Iterator[RawRecord]:
    """Records of one file; fully blank CSV/TSV/Excel rows are skipped, their numbers in ``blank``."""
    source = display(path)
    if path.is_dir():
        yield from read_hf(str(path), source, hf_split)
        return
    ext = base_suffix(path)
    if ext in PARQUET_EXT:
        yield from read_parquet(path, source)
    elif ext in EXCEL_EXT:
        yield from read_excel(path, source, sheet, blank)
    elif ext in ARROW_EXT:
        yield from read_arrow(path, source)
    else:
        enc = sniff_encoding(path, encoding)
        if ext in JSONL_EXT:
            yield from read_jsonl(path, source, enc)
        elif ext in JSON_EXT:
            yield from read_json(path, source, enc)
        elif ext in CSV_EXT:
            yield from read_csv(path, source, enc, blank)
        elif ext in TEXT_EXT:
            if text_is_jsonl(path, enc):
                yield from read_jsonl(path, source, enc)
            else:
                yield from read_text_paragraphs(path, source, enc)
        else:  # pragma: no cover - expand() filters
            raise FactoryKitError(f"{source}: unsupported file type {ext}")


def is_jsonl(path: Path, encoding: str) -> bool:
    ext = base_suffix(path)
    return (ext in JSONL_EXT or (ext in JSON_EXT and looks_like_jsonl(path, encoding))
            or (ext in TEXT_EXT and text_is_jsonl(path, encoding)))


def is_text_file(path: Path) -> bool:
    """Plain text (paragraphs), read for pre-training: a .txt/.md file that is not JSON Lines."""
    return base_suffix(path) in TEXT_EXT and not text_is_jsonl(path, sniff_encoding(path))


def disguised_jsonl(path: Path | str) -> bool:
    """A .txt/.md file whose content is JSON Lines (read as such; the import says so)."""
    return (isinstance(path, Path) and path.is_file() and base_suffix(path) in TEXT_EXT
            and text_is_jsonl(path, sniff_encoding(path)))


def from_table(path: Path) -> bool:
    """CSV/Excel cells are untyped text: numbers there are accepted as text."""
    return base_suffix(path) in CSV_EXT | EXCEL_EXT


def estimate_rows(path: Path | str) -> int | None:
    """About how many records reading ``path`` gives, for a progress bar's total; None when that
    is not known without parsing the file. Line-based files cost one quick pass over their bytes,
    so ask only when a bar is shown."""
    if isinstance(path, str) or path.is_dir():
        return None
    ext = base_suffix(path)
    try:
        if ext in PARQUET_EXT:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if is_jsonl(path, "utf-8"):
            return count_lines(path)
        if ext in CSV_EXT:
            return max(count_lines(path) - 1, 0)
    except Exception:  # a file the reader will report properly; the bar just has no total
        return None
    return None


__all__ = [
    "ARROW_EXT", "CSV_EXT", "EXCEL_EXT", "JSONL_EXT", "JSON_EXT", "NOT_DATA", "PARQUET_EXT", "SUPPORTED",
    "SUPPORTED_TEXT", "TEXT_EXT", "UNDECODABLE", "RawRecord", "base_suffix", "count_lines", "disguised_jsonl", "display",
    "estimate_rows", "expand", "from_table",
    "is_datasets_folder", "is_jsonl", "is_text_file", "jsonl_chunks", "looks_like_jsonl", "parse_jsonl_line",
    "read", "read_arrow", "read_csv", "read_excel", "read_hf", "read_json", "read_jsonl", "read_parquet",
    "read_text_paragraphs", "scan_folder", "sniff_encoding", "text_is_jsonl",
]
