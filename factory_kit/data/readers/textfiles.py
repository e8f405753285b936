"""Plain text (.txt / .md): paragraphs, for pre-training imports."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterator

from factory_kit.data.readers.base import UNDECODABLE, RawRecord, decode_line, open_binary


def read_text_paragraphs(path: Path, source: str, encoding: str) -> Iterator[RawRecord]:
    """Paragraphs (blank-line separated) as records ``{"text": ...}`` with their first line."""
    para: list[str] = []
    start = 0
    with open_binary(path) as fh:
        for lineno, data in enumerate(fh, 1):
            if lineno == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
            text = decode_line(data, encoding)
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
