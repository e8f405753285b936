"""What every reader shares: the record type, file-type suffixes, encodings and the wording of
row errors. A reader never raises for a bad *row*: a line that is not JSON, bytes that do not
decode, a CSV row with the wrong number of cells all come out as a :class:`RawRecord` with
``error`` set, so the import can quarantine them with their line number. A reader raises
:class:`FactoryKitError` only when the *file* cannot be read at all."""

from __future__ import annotations

import codecs
import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory_kit.core.errors import FactoryKitError

JSONL_EXT = {".jsonl", ".ndjson"}
JSON_EXT = {".json"}
CSV_EXT = {".csv", ".tsv"}
PARQUET_EXT = {".parquet"}
EXCEL_EXT = {".xlsx", ".xlsm"}
TEXT_EXT = {".txt", ".md", ".markdown"}
ARROW_EXT = {".arrow"}
SUPPORTED = JSONL_EXT | JSON_EXT | CSV_EXT | PARQUET_EXT | EXCEL_EXT | TEXT_EXT | ARROW_EXT
SUPPORTED_TEXT = ".jsonl .json .csv .tsv .parquet .xlsx .txt .md (optionally .gz), a datasets folder or a hub id"
# Files a dataset folder (a hub snapshot, a repository) holds beside its data: a folder import
# skips them, and says so, unless the folder holds nothing else.
NOT_DATA = re.compile(r"^(readme|license|licence|copying|notice|changelog|contributing|citation"
                      r"|authors|code_of_conduct|security|dataset_infos|dataset_card)([._-].*)?$", re.IGNORECASE)


@dataclass
class RawRecord:
    """One input unit: a parsed object, or the raw text and why it could not be parsed."""

    source: str
    line: int  # 1-based line (row number for parquet/excel/datasets)
    obj: Any = None
    raw: str | None = None
    error: str | None = None
    kind: str = "parse"  # parse | decode (when error is set)
    # 1-based element of a JSON array whose elements share lines (minified): the row is then
    # addressed as "item N" (``line`` is still the line where the element starts)
    item: int | None = None


def display(path: Path) -> str:
    """A path as the user should see it: relative to the cwd when inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def open_binary(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def count_lines(path: Path) -> int:
    """Lines of a (possibly gzipped) file, a last line without a newline included."""
    n = 0
    last = b"\n"
    with open_binary(path) as fh:
        while block := fh.read(1 << 22):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


# --- encodings ---------------------------------------------------------------------------

def sniff_encoding(path: Path, explicit: str | None = None) -> str:
    """utf-8 / utf-8-sig / utf-16 (BOM) / gb18030 (GBK exports from hospital systems)."""
    if explicit:
        try:
            codecs.lookup(explicit)
        except LookupError:
            raise FactoryKitError(f"--encoding {explicit}: unknown encoding (try utf-8, gb18030, big5)") from None
        return explicit
    with open_binary(path) as fh:
        head = fh.read(1 << 16)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        dec.decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    dec = codecs.getincrementaldecoder("gb18030")()
    try:
        dec.decode(head, final=False)
        return "gb18030"
    except UnicodeDecodeError:
        return "utf-8"


def decode_line(data: bytes, encoding: str) -> str | None:
    """Decode one line with the file's encoding, falling back to GB18030 for UTF-8 files."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        if encoding.startswith("utf-8"):
            try:
                return data.decode("gb18030")
            except UnicodeDecodeError:
                return None
        return None


UNDECODABLE = "undecodable bytes (neither {enc} nor GB18030); re-save the file as UTF-8 or pass --encoding"


def json_error(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated"):
            return f"truncated JSON ({exc.msg} at column {exc.colno})"
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return "not valid JSON (nested too deeply)"
    return "not valid JSON"


def expect_object(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return None
    kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(obj), type(obj).__name__)
    return f"expected a JSON object per row, got {kind}"


