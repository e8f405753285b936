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
        self._line = 0
        self.merge_records = False  # set by the import for .txt/.md files (one record per paragraph)

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return bool(keys & set(TEXT))

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        text = self.field(row, "text", TEXT[1:])
        out: list[dict[str, Any]] = []
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        for para in paragraphs:
            out += self._add(para, line)
        if not self.merge_records:
            out += self.flush()
        return out

    def _add(self, para: str, line: int) -> list[dict[str, Any]]:
        out = []
        size = self.length(para)
        if size > self.budget:
            out += self.flush()
            for piece in self._split_long(para):
                out.append(self._chunk(piece, line))
            return out
        if self._para and self._size + size > self.budget:
            out += self.flush()
        if not self._para:
            self._line = line
        self._para.append(para)
        self._size += size + 1
        return out

    def _split_long(self, para: str) -> list[str]:
        pieces: list[str] = []
        cur = ""
        for sent in (s for s in _SENTENCE.split(para) if s):
            if cur and self.length(cur + sent) > self.budget:
                pieces.append(cur.strip())
                cur = ""
            while self.length(sent) > self.budget:
                cut = self._cut(sent)
                pieces.append(sent[:cut].strip())
                sent = sent[cut:]
            cur += sent
        if cur.strip():
            pieces.append(cur.strip())
        return [p for p in pieces if p]

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

    def _chunk(self, text: str, line: int) -> dict[str, Any]:
        return {"text": text, "_line": line}

    def flush(self) -> list[dict[str, Any]]:
        if not self._para:
            return []
        chunk = self._chunk("\n\n".join(self._para), self._line)
        self._para, self._size = [], 0
        return [chunk]

    def entry(self) -> dict[str, Any]:
        # Pre-training data: alpaca formatting with the text as the prompt column.
        return {"formatting": "alpaca", "ranking": False, "columns": {"prompt": "text"}}
