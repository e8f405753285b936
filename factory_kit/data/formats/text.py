"""Plain-text corpora for pre-training (``stage: pt``): .txt / .md files, or rows with ``text``.

Text is chunked on paragraph boundaries to a budget of characters (``chunk_chars``, default
2000) or of tokens (``chunk_tokens`` with a ``tokenizer`` folder). A paragraph over the
budget is cut at sentence ends (。！？!?；), and a sentence over it at the budget.
Counts for a text import are *chunks*: every chunk is accepted or quarantined.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.formats.base import Importer

TEXT = ("text", "content", "正文", "document", "body")
_PARAGRAPHS = re.compile(r"(\n\s*\n)")
_SENTENCE = re.compile(r"(?<=[。！？!?；;])|(?<=\n)")


class TextImporter(Importer):
    name = "text"
    output = "text"
    text_fields = ("text",)

    def __init__(self, *args: Any, chunk_chars: int | None = None, chunk_tokens: int | None = None,
                 tokenizer: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.length: Callable[[str], int] = len
        if chunk_tokens:
            if not tokenizer:
                raise FactoryKitError("--chunk-tokens needs --tokenizer DIR (a tokenizer or model folder)")
            from factory_kit.data.tokens import load_tokenizer

            tok = load_tokenizer(tokenizer)
            self.length = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])
            self.budget = int(chunk_tokens)
        else:
            self.budget = int(chunk_chars or 2000)
        if self.budget < 16:
            raise FactoryKitError(f"chunk budget {self.budget} is too small (use at least 16)")
        self._para: list[str] = []
        self._size = 0
        self._line = self._last = 0
        self.chunks = 0  # chunks made from the current source
        self.merge_records = False  # set by the import for .txt/.md files (one record per paragraph)

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return bool(keys & set(TEXT))

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        text = self.field(row, "text", TEXT[1:])
        out: list[dict[str, Any]] = []
        at = 0
        for i, part in enumerate(_PARAGRAPHS.split(text)):  # paragraphs, and the blank lines between
            if i % 2 == 0 and part.strip():
                # a paragraph of a text file: its own first line (a row's text: the row's line)
                first = line + text.count("\n", 0, at + len(part) - len(part.lstrip())) if self.merge_records else line
                out += self._add(part.strip(), first)
            at += len(part)
        if not self.merge_records:
            out += self.flush()
        return out

    def _add(self, para: str, line: int) -> list[dict[str, Any]]:
        out = []
        size = self.length(para)
        lines = self.merge_records  # text-file lines: a chunk spans lines; else the row's line
        if size > self.budget:
            out += self.flush()
            for piece, offset in self._split_long(para):
                first = line + para.count("\n", 0, offset) if lines else line
                out.append(self._chunk(piece, first, first + piece.count("\n") if lines else line))
            return out
        if self._para and self._size + size > self.budget:
            out += self.flush()
        if not self._para:
            self._line = line
        self._last = line + para.count("\n") if lines else line
        self._para.append(para)
        self._size += size + 1
        return out

    def _split_long(self, para: str) -> list[tuple[str, int]]:
        """Pieces of a paragraph over the budget, each with its offset in the paragraph."""
        pieces: list[tuple[str, int]] = []
        cur, cur_at, at = "", 0, 0
        for sent in (s for s in _SENTENCE.split(para) if s):
            if cur and self.length(cur + sent) > self.budget:
                pieces.append((cur, cur_at))
                cur = ""
            while self.length(sent) > self.budget:
                cut = self._cut(sent)
                pieces.append((sent[:cut], at))
                sent, at = sent[cut:], at + cut
            if not cur:
                cur_at = at
            cur += sent
            at += len(sent)
        if cur:
            pieces.append((cur, cur_at))
        return [(p.strip(), start + len(p) - len(p.lstrip())) for p, start in pieces if p.strip()]

    def _cut(self, text: str) -> int:
        if self.length is len:
            return self.budget
        lo, hi = 1, len(text)
        while lo < hi:  # longest prefix within the token budget
            mid = (lo + hi + 1) // 2
            if self.length(text[:mid]) <= self.budget:
                lo = mid
            else:
                hi = mid - 1
        return max(lo, 1)

    def _chunk(self, text: str, line: int, last: int) -> dict[str, Any]:
        """A chunk with where it is: its first and last line and its number in the source, so that
        a duplicate names both chunks exactly (several chunks can share a line)."""
        self.chunks += 1
        return {"text": text, "_line": line, "_last": last, "_chunk": self.chunks}

    def flush(self) -> list[dict[str, Any]]:
        if not self._para:
            return []
        chunk = self._chunk("\n\n".join(self._para), self._line, self._last)
        self._para, self._size = [], 0
        return [chunk]

    def end_source(self) -> list[dict[str, Any]]:
        """The last chunk of a source; the next source numbers its chunks from 1."""
        out = self.flush()
        self.chunks = 0
        return out

    def entry(self) -> dict[str, Any]:
        # Pre-training data: alpaca formatting with the text as the prompt column.
        return {"formatting": "alpaca", "ranking": False, "columns": {"prompt": "text"}}
