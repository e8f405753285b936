"""Readers: turn a file (or a datasets folder / hub id) into a stream of raw records.

A reader never raises for a bad *row*: a line that is not JSON, bytes that do not decode,
a CSV row with the wrong number of cells all come out as a :class:`RawRecord` with
``error`` set, so the import can quarantine them with their line number. A reader raises
:class:`FactoryKitError` only when the *file* cannot be read at all (missing, empty,
unknown type, not JSON at the top level...), with the reason and what to do.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

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
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


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


def _open_binary(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


# --- encodings ---------------------------------------------------------------------------

def sniff_encoding(path: Path, explicit: str | None = None) -> str:
    """utf-8 / utf-8-sig / utf-16 (BOM) / gb18030 (GBK exports from hospital systems)."""
    if explicit:
        try:
            codecs.lookup(explicit)
        except LookupError:
            raise FactoryKitError(f"--encoding {explicit}: unknown encoding (try utf-8, gb18030, big5)") from None
        return explicit
    with _open_binary(path) as fh:
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


def _decode_line(data: bytes, encoding: str) -> str | None:
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


def _json_error(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated"):
            return f"truncated JSON ({exc.msg} at column {exc.colno})"
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return "not valid JSON (nested too deeply)"
    return "not valid JSON"


def _expect_object(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return None
    kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(obj), type(obj).__name__)
    return f"expected a JSON object per row, got {kind}"


# --- JSON Lines --------------------------------------------------------------------------

def parse_jsonl_line(data: bytes, lineno: int, source: str, encoding: str) -> RawRecord | None:
    """One JSON Lines line -> a record (None for a blank line, which carries nothing)."""
    if lineno == 1 and data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    if encoding in ("utf-8", "utf-8-sig"):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if not data.strip():
                return None
        else:
            if type(obj) is dict:
                return RawRecord(source, lineno, obj)
            return RawRecord(source, lineno, raw=data.decode("utf-8", "replace").rstrip("\r\n"),
                             error=_expect_object(obj))
    elif not data.strip():
        return None
    text = _decode_line(data, encoding)
    if text is None:
        return RawRecord(source, lineno, raw=data.decode("utf-8", "backslashreplace").rstrip("\r\n"),
                         error=UNDECODABLE.format(enc=encoding), kind="decode")
    text = text.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return RawRecord(source, lineno, raw=text, error=_json_error(text))
    except RecursionError:
        return RawRecord(source, lineno, raw=text, error="not valid JSON (nested too deeply)")
    err = _expect_object(obj)
    if err is None:
        return RawRecord(source, lineno, obj)
    return RawRecord(source, lineno, raw=text, error=err)


def read_jsonl(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    with _open_binary(path) as fh:
        for lineno, data in enumerate(fh, 1):
            rec = parse_jsonl_line(data, lineno, source, encoding)
            if rec is not None:
                yield rec


def jsonl_chunks(path: Path, size: int = 4 << 20) -> Iterator[tuple[bytes, int]]:
    """(bytes of whole lines, number of the first line) blocks of a JSON Lines file."""
    line = 1
    rest = b""
    with _open_binary(path) as fh:
        while True:
            block = fh.read(size)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            chunk = block[:cut]
            yield chunk, line
            line += chunk.count(b"\n")
    if rest:
        yield rest, line


# --- JSON (array, object with a list, or JSON Lines named .json) -------------------------

_WS = re.compile(r"[ \t\n\r]*")


def _looks_like_jsonl(path: Path, encoding: str) -> bool:
    with _open_binary(path) as fh:
        first = b""
        for data in fh:
            if data.strip():
                first = data
                break
        second = b""
        for data in fh:
            if data.strip():
                second = data
                break
    if not first.lstrip(codecs.BOM_UTF8).lstrip().startswith(b"{") or not second.strip():
        return False
    try:
        obj = json.loads(first.decode(encoding, "replace").lstrip("\ufeff"))
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and second.lstrip().startswith(b"{")


def read_json(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    """A JSON array is streamed element by element; a truncated tail is one bad record.

    Rows are addressed by line when the array has one element per line (or multi-line
    elements, pretty-printed); when its first two elements start on the same line (a
    minified array) a line says nothing, so every row of the file is addressed by its
    1-based element number instead (``RawRecord.item``)."""
    records = _read_json(path, source, encoding)
    head = list(itertools.islice(records, 2))
    by_item = (len(head) == 2 and head[0].item is not None and head[1].item is not None
               and head[0].line == head[1].line)
    for rec in itertools.chain(head, records):
        if not by_item:
            rec.item = None
        yield rec


def _read_json(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    if _looks_like_jsonl(path, encoding):
        yield from read_jsonl(path, source, encoding)
        return
    decoder = json.JSONDecoder()
    raw_fh = _open_binary(path)
    fh = io.TextIOWrapper(raw_fh, encoding=encoding)
    try:
        try:
            buf = fh.read(1 << 20).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise FactoryKitError(
                f"{source}: {UNDECODABLE.format(enc=encoding)} (byte {exc.start})") from None
        pos = _WS.match(buf, 0).end()
        if pos >= len(buf):
            raise FactoryKitError(f"{source}: file is empty")
        if buf[pos] == "{":
            yield from _read_json_object(path, source, encoding)
            return
        if buf[pos] != "[":
            raise FactoryKitError(
                f"{source}:1: not JSON (starts with {buf[pos]!r}); expected a JSON array of rows or JSON Lines")
        pos += 1
        line = 1 + buf.count("\n", 0, pos)
        eof = False
        index = 0

        def more() -> bool:
            nonlocal buf, pos, eof
            if eof:
                return False
            try:
                chunk = fh.read(1 << 20)
            except UnicodeDecodeError:
                raise FactoryKitError(
                    f"{source}: {UNDECODABLE.format(enc=encoding)} (near line {line})") from None
            if not chunk:
                eof = True
                return False
            buf = buf[pos:] + chunk
            pos = 0
            return True

        expect_value = True
        while True:
            m = _WS.match(buf, pos)
            line += buf.count("\n", pos, m.end())
            pos = m.end()
            if pos >= len(buf):
                if more():
                    continue
                if index == 0 and expect_value:
                    raise FactoryKitError(f"{source}: truncated JSON: the array is never closed and has no rows")
                yield RawRecord(source, line, raw="", error="truncated JSON: the file ends before the array's closing ]",
                                item=index + 1)
                return
            ch = buf[pos]
            if ch == "]":
                return
            if not expect_value:
                if ch == ",":
                    pos += 1
                    expect_value = True
                    continue
                rest = buf[pos:pos + 200]
                while more():
                    pass
                yield RawRecord(source, line, raw=buf[pos:], error=(
                    f"not valid JSON after row {index} (expected ',' or ']' but found {rest[:20]!r}); "
                    f"the rest of the file is kept here as one record"), item=index + 1)
                return
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(buf) - 2 or exc.msg.startswith("Unterminated")
                if near_end and more():
                    continue
                index += 1
                if not near_end:
                    # Resynchronise on the next element that starts at this one's indentation
                    # (pretty-printed arrays), so one broken row does not take the rest with it.
                    col = pos - (buf.rfind("\n", 0, pos) + 1)
                    nxt = re.compile(r",[ \t\r]*\n[ \t]{%d}(?=\{)" % col)
                    m = nxt.search(buf, exc.pos)
                    while m is None and len(buf) - pos < (64 << 20) and more():
                        m = nxt.search(buf, pos)
                    if m is not None:
                        yield RawRecord(source, line, raw=buf[pos:m.start()],
                                        error=f"not valid JSON in row {index} ({exc.msg})", item=index)
                        line += buf.count("\n", pos, m.end())
                        pos = m.end()
                        continue
                while more():
                    pass
                kind = "truncated JSON" if near_end else "not valid JSON"
                yield RawRecord(source, line, raw=buf[pos:], error=(
                    f"{kind} in row {index} ({exc.msg}); the rest of the file is kept here as one record"), item=index)
                return
            except RecursionError:
                yield RawRecord(source, line, raw=buf[pos:pos + 1000], error="not valid JSON (nested too deeply)",
                                item=index + 1)
                return
            index += 1
            err = _expect_object(obj)
            if err is None:
                yield RawRecord(source, line, obj, item=index)
            else:
                yield RawRecord(source, line, raw=buf[pos:end], error=err, item=index)
            line += buf.count("\n", pos, end)
            pos = end
            expect_value = False
            if pos > (1 << 20):
                buf = buf[pos:]
                pos = 0
    finally:
        fh.close()


def _read_json_object(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    with _open_binary(path) as fh:
        text = fh.read().decode(encoding, "strict").lstrip("\ufeff")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactoryKitError(f"{source}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file "
                              "(or save it as JSON Lines so one bad row cannot spoil the rest)") from None
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    columns = _column_oriented(obj)
    if len(lists) == 1 and not any(k in obj for k in ("conversations", "messages")):
        for i, row in enumerate(obj[lists[0]], 1):
            yield RawRecord(source, i, row)
    elif columns is not None:
        for i, row in enumerate(columns, 1):
            yield RawRecord(source, i, row)
    else:
        yield RawRecord(source, 1, obj)


def _column_oriented(obj: dict) -> list[dict] | None:
    """Rows of a column-oriented JSON object, or None: {"question": [...], "answer": [...]} (equal-length
    lists of scalars) and pandas' default ``to_json()`` {"question": {"0": ...}, "answer": {"0": ...}}."""
    values = list(obj.values())
    if len(values) < 2 or any(k in obj for k in ("conversations", "messages")):
        return None
    if all(isinstance(v, list) for v in values):
        n = len(values[0])
        if n and all(len(v) == n and not any(isinstance(x, (dict, list)) for x in v) for v in values):
            return [{k: obj[k][i] for k in obj} for i in range(n)]
    if all(isinstance(v, dict) for v in values):
        index = list(values[0])
        if index and all(list(v) == index and not any(isinstance(x, (dict, list)) for x in v.values())
                         for v in values):
            return [{k: obj[k][i] for k in obj} for i in index]
    return None


# --- CSV / TSV ---------------------------------------------------------------------------

def _fix_surrogates(value: str) -> str | None:
    """A cell decoded with surrogateescape: retry its bytes as GB18030, else None."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("gb18030")
    except UnicodeError:
        return None


def read_csv(path: Path, source: str, encoding: str, blank: list[int] | None = None) -> Iterator[RawRecord]:
    """Rows as records; a fully blank row (no cells, or only empty ones: ``,,,``) carries
    nothing and is not a row: its line number goes to ``blank`` when given."""
    fh = io.TextIOWrapper(_open_binary(path), encoding=encoding, errors="surrogateescape", newline="")
    try:
        header_line = fh.readline()
        if not header_line.strip():
            raise FactoryKitError(f"{source}: file is empty (no header row)")
        if base_suffix(path) == ".tsv" or (header_line.count("\t") > header_line.count(",")):
            delimiter = "\t"
        elif header_line.count(";") > header_line.count(","):
            delimiter = ";"
        else:
            delimiter = ","
        header = next(csv.reader([header_line], delimiter=delimiter))
        header = [h.strip().lstrip("\ufeff") for h in header]
        if any("\udc80" <= ch <= "\udcff" for h in header for ch in h):
            fixed = [_fix_surrogates(h) for h in header]
            if any(f is None for f in fixed):
                raise FactoryKitError(f"{source}:1: header has {UNDECODABLE.format(enc=encoding)}")
            header = [f.strip() for f in fixed]  # type: ignore[union-attr]
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise FactoryKitError(f"{source}:1: duplicate column name(s) {', '.join(map(repr, dup))} in the header")
        yield from _csv_records(fh, 2, header, delimiter, source, encoding, blank)
    finally:
        fh.close()


class _TrackedLines:
    """Line iterator for csv.reader that remembers the physical lines of the row being read."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = iter(lines)
        self.span: list[str] = []

    def rest(self) -> Iterator[str]:
        """The lines not read yet."""
        return self._lines

    def __iter__(self) -> "_TrackedLines":
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.span.append(line)
        return line


def _stray_quote(span: list[str], delimiter: str) -> bool:
    """A row spanning several lines that strict CSV rejects: a quote opened and never closed, or
    closed by a later cell's opening quote (text right after it). A real multi-line cell passes."""
    try:
        for _ in csv.reader(span, delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return True
    return False


def _csv_records(lines: Iterator[str], first_line: int, header: list[str], delimiter: str, source: str,
                 encoding: str, blank: list[int] | None) -> Iterator[RawRecord]:
    pending: Iterator[str] | None = lines
    while pending is not None:
        rows = _csv_rows(pending, first_line, header, delimiter, source, encoding, blank)
        pending = None
        for record in rows:
            if isinstance(record, tuple):  # an unclosed quote: read the lines after its first one again
                pending, first_line = record
                break
            yield record


def _csv_rows(lines: Iterator[str], first_line: int, header: list[str], delimiter: str, source: str,
              encoding: str, blank: list[int] | None) -> Iterator[RawRecord | tuple[list[str], int]]:
    tracked = _TrackedLines(lines)
    reader = csv.reader(tracked, delimiter=delimiter)
    line = first_line
    while True:
        tracked.span = []
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RawRecord(source, line, raw="".join(tracked.span), error=f"not valid CSV ({exc})")
            line += max(len(tracked.span), 1)
            continue
        span = tracked.span
        row_line, line = line, line + len(span)
        if len(span) > 1 and _stray_quote(span, delimiter):
            # Without this, one stray quote folds the following lines into a single "row".
            yield RawRecord(source, row_line, raw=span[0], error=(
                "a quoted cell opens on this line and is not closed properly (a stray or missing '\"'); "
                "the lines after it were read again as rows"))
            yield itertools.chain(span[1:], tracked.rest()), row_line + 1
            return
        if not any(c.strip() for c in cells):
            if blank is not None:
                blank.append(row_line)
            continue
        bad = False
        for i, cell in enumerate(cells):
            if any("\udc80" <= ch <= "\udcff" for ch in cell):
                fixed = _fix_surrogates(cell)
                if fixed is None:
                    bad = True
                    break
                cells[i] = fixed
        if bad:
            raw = delimiter.join(c.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                                 for c in cells)
            yield RawRecord(source, row_line, raw=raw, error=UNDECODABLE.format(enc=encoding), kind="decode")
            continue
        if len(cells) != len(header):
            hint = (f"a quoted cell runs over lines {row_line}-{line - 1}: a stray '\"'?" if len(span) > 1
                    else f"an unquoted {'tab' if delimiter == chr(9) else repr(delimiter)} in a cell?")
            yield RawRecord(source, row_line, raw=delimiter.join(cells), error=(
                f"row has {len(cells)} cells, the header has {len(header)} ({hint})"))
            continue
        yield RawRecord(source, row_line, dict(zip(header, cells, strict=True)))


# --- Parquet / Arrow / Excel / datasets ----------------------------------------------------

def read_parquet(path: Path, source: str) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise FactoryKitError(f"{source}: not a readable Parquet file ({exc})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            row += 1
            yield RawRecord(source, row, obj)


def read_excel(path: Path, source: str, sheet: str | None = None,
               blank: list[int] | None = None) -> Iterator[RawRecord]:
    """Rows of a sheet as records; a fully blank row is not a row (its number goes to ``blank``)."""
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - openpyxl is a dependency
        raise FactoryKitError(f"{source}: reading Excel needs openpyxl (pip install openpyxl)") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FactoryKitError(f"{source}: not a readable .xlsx workbook ({exc}); save it as .xlsx or CSV") from None
    try:
        if sheet:
            if sheet not in wb.sheetnames:
                raise FactoryKitError(f"{source}: no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}")
            ws = wb[sheet]
        else:
            ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header_row = next(rows, None)
        if header_row is None:
            raise FactoryKitError(f"{source}: sheet {ws.title!r} is empty")
        header = [str(h).strip() if h is not None else "" for h in header_row]
        while header and header[-1] == "":
            header.pop()
        for i, values in enumerate(rows, 2):
            values = list(values)
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                if blank is not None:
                    blank.append(i)
                continue
            extra = [v for v in values[len(header):] if v is not None]
            if extra:
                yield RawRecord(source, i, raw=repr(values), error=f"row has {len(header) + len(extra)} cells, the header has {len(header)}")
                continue
            obj = {h: values[j] if j < len(values) else None for j, h in enumerate(header) if h}
            yield RawRecord(source, i, obj)
    finally:
        wb.close()


def is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                              or (path / "dataset_dict.json").exists())


def read_hf(spec: str, source: str, split: str | None = None) -> Iterator[RawRecord]:
    """A ``save_to_disk`` folder, or a hub id (streamed; needs network)."""
    import datasets

    path = Path(spec)
    if path.exists():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise FactoryKitError(f"{source}: not a datasets save_to_disk folder ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            name = split or ("train" if "train" in ds else next(iter(ds)))
            if name not in ds:
                raise FactoryKitError(f"{source}: no split {name!r}; splits: {', '.join(ds)}")
            ds = ds[name]
        for i, obj in enumerate(ds, 1):
            yield RawRecord(source, i, obj)
        return
    try:
        ds = datasets.load_dataset(spec, split=split or "train", streaming=True)
        it = iter(ds)
        first = next(it, None)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FactoryKitError(
            f"{spec}: cannot load from the Hugging Face Hub ({msg}); check the id and the network, "
            "or download it elsewhere and pass the save_to_disk folder or its files") from None
    if first is None:
        return
    yield RawRecord(source, 1, first)
    for i, obj in enumerate(it, 2):
        yield RawRecord(source, i, obj)


def read_arrow(path: Path, source: str) -> Iterator[RawRecord]:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as src:
            try:
                reader = pa.ipc.open_stream(src)
            except pa.ArrowInvalid:
                reader = pa.ipc.open_file(src)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                batches = iter(reader)
            row = 0
            for batch in batches:
                for obj in batch.to_pylist():
                    row += 1
                    yield RawRecord(source, row, obj)
    except pa.ArrowInvalid as exc:
        raise FactoryKitError(f"{source}: not a readable Arrow file ({exc})") from None


# --- plain text ----------------------------------------------------------------------------

def read_text_paragraphs(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    """Paragraphs (blank-line separated) as records ``{"text": ...}`` with their first line."""
    para: list[str] = []
    start = 0
    with _open_binary(path) as fh:
        for lineno, data in enumerate(fh, 1):
            if lineno == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
            text = _decode_line(data, encoding)
            if text is None:
                if para:
                    yield RawRecord(source, start, {"text": "\n".join(para)})
                    para = []
                yield RawRecord(source, lineno, raw=data.decode("utf-8", "backslashreplace"),
                                error=UNDECODABLE.format(enc=encoding), kind="decode")
                continue
            text = text.rstrip("\r\n")
            if text.strip():
                if not para:
                    start = lineno
                para.append(text)
            elif para:
                yield RawRecord(source, start, {"text": "\n".join(para)})
                para = []
    if para:
        yield RawRecord(source, start, {"text": "\n".join(para)})


# --- dispatch ------------------------------------------------------------------------------

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
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts) and base_suffix(p) in SUPPORTED)
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
            yield from read_text_paragraphs(path, source, enc)
        else:  # pragma: no cover - expand() filters
            raise FactoryKitError(f"{source}: unsupported file type {ext}")


def is_jsonl(path: Path, encoding: str) -> bool:
    ext = base_suffix(path)
    return ext in JSONL_EXT or (ext in JSON_EXT and _looks_like_jsonl(path, encoding))


def is_text_file(path: Path) -> bool:
    return base_suffix(path) in TEXT_EXT


def from_table(path: Path) -> bool:
    """CSV/Excel cells are untyped text: numbers there are accepted as text."""
    return base_suffix(path) in CSV_EXT | EXCEL_EXT
