"""CSV / TSV: the delimiter sniffed from the header; a bad row (wrong cell count, stray quote,
undecodable bytes) is a record with its reason, and the rows after it are still read."""

from __future__ import annotations

import csv
import io
import itertools
import sys
from pathlib import Path
from typing import Iterator

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.readers.base import UNDECODABLE, RawRecord, base_suffix, open_binary

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _fix_surrogates(value: str) -> str | None:
    """A cell decoded with surrogateescape: retry its bytes as GB18030, else None."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("gb18030")
    except UnicodeError:
        return None


def read_csv(path: Path, source: str, encoding: str, blank: list[int] | None = None) -> Iterator[RawRecord]:
    """Rows as records; a fully blank row (no cells, or only empty ones: ``,,,``) carries
    nothing and is not a row: its line number goes to ``blank`` when given."""
    fh = io.TextIOWrapper(open_binary(path), encoding=encoding, errors="surrogateescape", newline="")
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
