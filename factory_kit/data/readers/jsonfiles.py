"""JSON Lines (streamed line by line, or in byte blocks for the parallel import) and JSON
(an array streamed element by element, an object holding a list of rows, or column lists)."""

from __future__ import annotations

import codecs
import itertools
import json
import re
from pathlib import Path
from typing import Iterator

import orjson

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.readers.base import (UNDECODABLE, RawRecord, decode_line, expect_object, json_error,
                                           open_binary)

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
                             error=expect_object(obj))
    elif not data.strip():
        return None
    cut = _cut_inside_character(data, encoding)
    if cut is not None:
        return RawRecord(source, lineno, raw=data.decode("utf-8", "backslashreplace"), error=(
            f"truncated JSON: the file ends inside a multi-byte character (byte {cut} of line {lineno}): "
            "it was cut off"))
    text = decode_line(data, encoding)
    if text is None:
        return RawRecord(source, lineno, raw=data.decode("utf-8", "backslashreplace").rstrip("\r\n"),
                         error=UNDECODABLE.format(enc=encoding), kind="decode")
    text = text.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return RawRecord(source, lineno, raw=text, error=json_error(text))
    except RecursionError:
        return RawRecord(source, lineno, raw=text, error="not valid JSON (nested too deeply)")
    err = expect_object(obj)
    if err is None:
        return RawRecord(source, lineno, obj)
    return RawRecord(source, lineno, raw=text, error=err)


def _cut_inside_character(data: bytes, encoding: str) -> int | None:
    """The byte (0-based, in the line) where a last line without a newline stops inside a UTF-8
    character, else None: a truncated file, not a GB18030 line (which it would decode as)."""
    if data.endswith(b"\n") or not encoding.startswith("utf-8"):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end == len(data) and exc.reason == "unexpected end of data":
            return exc.start
    return None


def read_jsonl(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    with open_binary(path) as fh:
        for lineno, data in enumerate(fh, 1):
            rec = parse_jsonl_line(data, lineno, source, encoding)
            if rec is not None:
                yield rec


def jsonl_chunks(path: Path, size: int = 4 << 20) -> Iterator[tuple[bytes, int]]:
    """(bytes of whole lines, number of the first line) blocks of a JSON Lines file."""
    line = 1
    rest = b""
    with open_binary(path) as fh:
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


def looks_like_jsonl(path: Path, encoding: str) -> bool:
    with open_binary(path) as fh:
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


def text_is_jsonl(path: Path, encoding: str, lines: int = 20) -> bool:
    """Whether a .txt/.md file is JSON Lines in disguise (MedicalGPT ships its corpora as
    ``medical_corpus.txt`` with one ``{"text": ...}`` per line): its first ``lines`` non-empty
    lines (at least one) are all JSON objects. Prose is rejected on its first line."""
    seen = 0
    with open_binary(path) as fh:
        for data in fh:
            data = data.lstrip(codecs.BOM_UTF8).strip() if seen == 0 else data.strip()
            if not data:
                continue
            if not data.startswith(b"{") or not data.endswith(b"}"):
                return False
            text = decode_line(data, encoding)  # a stray GB18030 line in UTF-8, as JSON Lines reads it
            try:
                obj = json.loads(text) if text is not None else None
            except (json.JSONDecodeError, RecursionError):
                return False
            if type(obj) is not dict:
                return False
            seen += 1
            if seen >= lines:
                break
    return seen > 0


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


_BAD = re.compile("[\udc80-\udcff]+")  # bytes that did not decode (surrogateescape)


class _Text:
    """A file's text, read in blocks. Bytes that do not decode become U+DC80..U+DCFF
    (surrogateescape) instead of failing the whole file, and the byte offset of each run of
    them is kept (the first 10,000), so the row holding them can say where they are: a file
    cut inside a multi-byte character loses only its last row. Blocks decode strictly (fast)
    until the first bad byte; from there on they are decoded with escapes and scanned."""

    def __init__(self, path: Path, encoding: str):
        self.fh = open_binary(path)
        self.encoding = encoding
        self.dec = codecs.getincrementaldecoder(encoding)()
        self.enc = {"utf-8-sig": "utf-8"}.get(encoding, encoding)
        self.skip = 3 if encoding == "utf-8-sig" else 0  # the BOM the decoder drops
        # escapes (and byte offsets) need a codec whose blocks decode on their own, without a BOM
        self.escapes = not codecs.lookup(self.enc).name.startswith(("utf-16", "utf-32"))
        self.bytes = 0  # bytes read so far
        self.chars = 0  # characters returned so far
        self.bad: dict[int, int] = {}  # character -> byte offset of a run of undecodable bytes
        self.dirty = False  # some bytes did not decode
        self.eof = False

    def read(self, size: int = 1 << 20) -> str:
        """The next text ('' at the end). A codec that cannot escape bytes (UTF-16) raises
        UnicodeDecodeError with ``start`` set to the absolute byte offset."""
        block = self.fh.read(size)
        self.eof = not block
        pending = self.dec.getstate()[0]
        start = self.bytes - len(pending) + (self.skip if self.bytes == 0 else 0)
        try:
            text = self.dec.decode(block, self.eof)
        except UnicodeDecodeError as exc:
            if not self.escapes:
                exc.start = self.bytes + len(block) - len(exc.object) + exc.start
                raise
            enc = self.encoding if self.bytes == 0 else self.enc
            self.dec = codecs.getincrementaldecoder(enc)(errors="surrogateescape")
            text = self.dec.decode(pending + block, self.eof)
            self.dirty = True
        self.bytes += len(block)
        if self.dirty and len(self.bad) < 10_000:
            prev = 0
            for m in _BAD.finditer(text):
                start += len(text[prev:m.start()].encode(self.enc, "surrogateescape"))
                self.bad[self.chars + m.start()] = start
                prev = m.start()
        self.chars += len(text)
        return text

    def where(self, char: int, line: int) -> str:
        """Where the undecodable bytes at absolute character ``char`` (on ``line``) are."""
        byte = self.bad.get(char)
        return f"line {line}" + (f", byte {byte}" if byte is not None else "")

    def close(self) -> None:
        self.fh.close()


def _shown(text: str) -> str:
    """Text holding undecodable bytes as a quarantine record shows it: ``\\xe4\\xb8``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _undecodable(text: _Text, source: str, line: int, buf: str, pos: int, end: int, base: int, index: int,
                 encoding: str) -> RawRecord:
    """An element holding undecodable bytes: as GB18030 when that decodes it (like a JSON Lines
    line), else quarantined with where the bytes are."""
    if encoding in ("utf-8", "utf-8-sig"):
        try:
            obj = json.loads(buf[pos:end].encode("utf-8", "surrogateescape").decode("gb18030"))
        except (UnicodeError, json.JSONDecodeError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            return RawRecord(source, line, obj, item=index)
    bad = _BAD.search(buf, pos, end)
    at = bad.start() if bad is not None else pos
    where = text.where(base + at, line + buf.count("\n", pos, at))
    return RawRecord(source, line, raw=_shown(buf[pos:end]), item=index, kind="decode",
                     error=f"{UNDECODABLE.format(enc=encoding)} (row {index}: {where})")


def _truncated(text: _Text, buf: str, pos: int, base: int, line: int) -> str:
    """What to add to "truncated JSON" when the file is cut inside a multi-byte character."""
    bad = _BAD.search(buf, pos)
    if bad is None:
        return ""
    where = text.where(base + bad.start(), line + buf.count("\n", pos, bad.start()))
    if bad.end() == len(buf):
        return f"; the file ends inside a multi-byte character ({where}): it was cut off"
    return f"; undecodable bytes at {where}"


def _read_json(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    if looks_like_jsonl(path, encoding):
        yield from read_jsonl(path, source, encoding)
        return
    decoder = json.JSONDecoder()
    fh = _Text(path, encoding)
    try:
        try:
            buf = fh.read()
        except UnicodeDecodeError as exc:
            raise FactoryKitError(
                f"{source}: {UNDECODABLE.format(enc=encoding)} (byte {exc.start})") from None
        base = 0  # the absolute character of buf[0]
        if buf.startswith("\ufeff"):
            buf, base = buf[1:], 1
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
        index = 0

        def more() -> bool:
            nonlocal buf, pos, base
            if fh.eof:
                return False
            try:
                chunk = fh.read()
            except UnicodeDecodeError as exc:
                raise FactoryKitError(
                    f"{source}: {UNDECODABLE.format(enc=encoding)} (near line {line}, byte {exc.start})") from None
            if not chunk and fh.eof:
                return False
            buf, base = buf[pos:] + chunk, base + pos
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
                yield RawRecord(source, line, raw=_shown(buf[pos:]), error=(
                    f"not valid JSON after row {index} (expected ',' or ']' but found {_shown(rest[:20])!r}); "
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
                        yield RawRecord(source, line, raw=_shown(buf[pos:m.start()]),
                                        error=f"not valid JSON in row {index} ({exc.msg})", item=index)
                        line += buf.count("\n", pos, m.end())
                        pos = m.end()
                        continue
                while more():
                    pass
                kind = "truncated JSON" if near_end else "not valid JSON"
                yield RawRecord(source, line, raw=_shown(buf[pos:]), error=(
                    f"{kind} in row {index} ({exc.msg}){_truncated(fh, buf, pos, base, line)}; the rest of the "
                    "file is kept here as one record"), item=index)
                return
            except RecursionError:
                yield RawRecord(source, line, raw=_shown(buf[pos:pos + 1000]), error="not valid JSON (nested too deeply)",
                                item=index + 1)
                return
            index += 1
            err = expect_object(obj)
            if fh.dirty and _BAD.search(buf, pos, end):
                yield _undecodable(fh, source, line, buf, pos, end, base, index, encoding)
            elif err is None:
                yield RawRecord(source, line, obj, item=index)
            else:
                yield RawRecord(source, line, raw=_shown(buf[pos:end]), error=err, item=index)
            line += buf.count("\n", pos, end)
            pos = end
            expect_value = False
            if pos > (1 << 20):
                buf, base = buf[pos:], base + pos
                pos = 0
    finally:
        fh.close()


def _read_json_object(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    with open_binary(path) as fh:
        data = fh.read()
    try:
        text = data.decode(encoding, "strict").lstrip("\ufeff")
    except UnicodeDecodeError as exc:  # read whole, so it cannot be read in part
        line = data.count(b"\n", 0, exc.start) + 1
        why = ("truncated JSON: the file ends inside a multi-byte character" if exc.end == len(data)
               and exc.reason == "unexpected end of data" else UNDECODABLE.format(enc=encoding))
        raise FactoryKitError(f"{source}:{line}: {why} (byte {exc.start}); a JSON object is read whole, so "
                              "it cannot be imported in part: fix the file, or save its rows as JSON Lines") from None
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
