"""Text normalisation and per-field validation for imported rows.

Every importer reads its fields through :class:`FieldReader`, so every format gets the same
checks (missing / null / wrong type / empty) and the same one-line reasons, and every text
goes through the same :class:`Normalizer` (Unicode NFC, width policy, whitespace,
optional traditional -> simplified) and, when asked, PII redaction.
"""

from __future__ import annotations

import datetime
import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

WIDTH_POLICIES = ("zh", "half", "keep")


class RowError(Exception):
    """A row cannot be imported; ``str(err)`` is the one-line reason stored in quarantine."""

    def __init__(self, reason: str, *, kind: str = "invalid"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # invalid | missing | empty | type | too_long | parse | decode | duplicate


# --- normalisation ---------------------------------------------------------------------

# Full-width ASCII variants (U+FF01..U+FF5E) -> ASCII, and the ideographic space.
_FULL_TO_HALF_ALL = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULL_TO_HALF_ALL[0x3000] = 0x20
# Chinese typesetting keeps full-width punctuation but wants ASCII letters and digits.
_FULL_TO_HALF_ALNUM = {
    cp: cp - 0xFEE0
    for cp in list(range(0xFF10, 0xFF1A)) + list(range(0xFF21, 0xFF3B)) + list(range(0xFF41, 0xFF5B))
}
# Zero-width characters, BOMs and C0/C1 controls other than \t and \n are dropped.
_DROP = {cp: None for cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)}
_DROP.update({cp: None for cp in range(0x00, 0x20) if cp not in (0x09, 0x0A)})
_DROP.update({cp: None for cp in range(0x7F, 0xA0)})
_DROP.update({0x0B: 0x0A, 0x0C: 0x0A, 0x0D: 0x0A})  # lone \r, VT, FF are line breaks
_DROP[0xA0] = 0x20  # no-break space
_ZH_TABLE = {**_DROP, **_FULL_TO_HALF_ALNUM}
_HALF_TABLE = {**_DROP, **_FULL_TO_HALF_ALL}

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# ASCII punctuation right after a CJK character becomes its full-width form (头痛,发热 -> 头痛，发热).
_ZH_PUNCT = re.compile(rf"(?<=[{_CJK}])([,;:?!.])(?:[ \t]+|(?=[{_CJK}\d\s“‘（(]|$))")
_ZH_PUNCT_MAP = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", ".": "。"}
_HSPACE = re.compile(r"[ \t]+")
_TRAIL = re.compile(r"[ \t]+\n")
_MANY_NL = re.compile(r"\n{3,}")
# One C-level scan decides whether a text needs any per-character work at all: most rows
# need none, and str.translate with a dict table is slow on long texts.
_DROP_CHARS = "\x00-\x08\x0b-\x1f\x7f-\xa0\u00ad\u200b-\u200d\u2060\ufeff"
# Characters that send a text down the slow path (\r and \t included, so one scan decides).
_NEEDS = {
    "zh": re.compile(rf"[{_DROP_CHARS}\r\t\uff10-\uff19\uff21-\uff3a\uff41-\uff5a,;:?!.]"),
    "half": re.compile(rf"[{_DROP_CHARS}\r\t\uff01-\uff5e\u3000]"),
    "keep": re.compile(rf"[{_DROP_CHARS}\r\t]"),
}
_NEEDS_ASCII = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Normalizer:
    """NFC + width policy + whitespace cleanup (+ traditional -> simplified when ``t2s``).

    Most texts need nothing but a strip: a few C-level scans decide that (``fast``), and
    only texts that need work take the full path (``slow``)."""

    width: str = "zh"
    t2s: bool = False
    _opencc: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.width not in WIDTH_POLICIES:
            from factory_kit.core.errors import FactoryKitError

            raise FactoryKitError(
                f"--width-policy {self.width!r}: choose one of {', '.join(WIDTH_POLICIES)}"
            )
        self._needs = _NEEDS[self.width]
        self._table = {"zh": _ZH_TABLE, "half": _HALF_TABLE, "keep": _DROP}[self.width]
        if self.t2s:
            import opencc  # opencc-python-reimplemented

            self._opencc = opencc.OpenCC("t2s")
        self.fast = self._make_fast()

    def _make_fast(self) -> Callable[[str], str]:
        needs_search = self._needs.search
        ascii_search = _NEEDS_ASCII.search
        is_nfc = unicodedata.is_normalized
        slow = self.slow
        t2s = self._opencc is not None

        def fast(text: str) -> str:
            if "  " in text or " \n" in text or "\n\n\n" in text:
                return slow(text)
            if text.isascii():
                if "\r" in text or "\t" in text or ascii_search(text):
                    return slow(text)
            elif t2s or needs_search(text) or not is_nfc("NFC", text):
                return slow(text)
            return text.strip()
        return fast

    def __call__(self, text: str) -> str:
        return self.fast(text)

    def slow(self, text: str) -> str:
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if text.isascii():
            if _NEEDS_ASCII.search(text):
                text = text.translate(_DROP)
        else:
            if not unicodedata.is_normalized("NFC", text):
                text = unicodedata.normalize("NFC", text)
            if self._needs.search(text):
                text = text.translate(self._table)
                if self.width == "zh" and _ZH_PUNCT.search(text):
                    text = _ZH_PUNCT.sub(lambda m: _ZH_PUNCT_MAP[m.group(1)], text)
            if self._opencc is not None:
                text = self._opencc.convert(text)
        if "  " in text or "\t" in text or " \n" in text or "\n\n\n" in text:
            text = _HSPACE.sub(" ", text)
            text = _TRAIL.sub("\n", text)
            text = _MANY_NL.sub("\n\n", text)
        return text.strip()


# --- field access with uniform reasons ---------------------------------------------------

_JSON_TYPE = {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list",
              dict: "an object", type(None): "null"}


def json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def scalar_to_text(value: Any) -> str | None:
    """Spreadsheet cells become text as a spreadsheet shows them: numbers (3.0 -> "3"),
    true/false ("TRUE"/"FALSE", as Excel displays them), dates and times as ISO text
    ("2024-03-07", "2024-03-07 08:30:00", "08:30:00"); other types are not text."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def lookup(row: dict, names: Iterable[str], lower: dict[str, str] | None = None) -> str | None:
    """The first key of ``row`` among ``names`` (exact, then case-insensitive)."""
    for name in names:
        if name in row:
            return name
    if lower is None:
        lower = {k.lower(): k for k in row if isinstance(k, str)}
    for name in names:
        key = lower.get(name.lower())
        if key is not None:
            return key
    return None


def did_you_mean(row: dict, names: Iterable[str]) -> str:
    keys = [k for k in row if isinstance(k, str)]
    for name in names:
        close = difflib.get_close_matches(name, keys, n=1, cutoff=0.75)
        if close:
            return f' (did you mean "{close[0]}"? map it with --columns {name}={close[0]})'
    return ""


class FieldReader:
    """Reads, type-checks, normalises and redacts the text fields of one import."""

    def __init__(self, normalizer: Normalizer, redactor: Callable[[str], str] | None = None,
                 numbers_as_text: bool = False):
        self.normalizer = normalizer
        self.normalize = normalizer.fast
        self.redact = redactor
        self.numbers_as_text = numbers_as_text

    def clean(self, text: str) -> str:
        text = self.normalize(text)
        if self.redact is not None and text:
            text = self.redact(text)
        return text

    def value(self, label: str, value: Any, *, required: bool = True, key: str | None = None) -> str:
        """Validate and clean one value already taken out of its row; ``label`` names it
        (or, when ``key`` is given, ``field "KEY"``: built only if there is an error)."""
        if type(value) is str:  # the common case, first and cheap
            text = self.normalize(value)
            if self.redact is not None and text:
                text = self.redact(text)
            if text or not required:
                return text
        if key is not None:
            label = f'field "{key}"'
        if value is None:
            if required:
                raise RowError(f"{label} is null", kind="missing")
            return ""
        if not isinstance(value, str):
            text = scalar_to_text(value) if self.numbers_as_text else None
            if text is None:
                raise RowError(f"{label} must be text, got {json_type(value)}", kind="type")
            value = text
        text = self.clean(value)
        if required and not text:
            raise RowError(f"{label} is empty", kind="empty")
        return text

    def text(self, row: dict, key: str | None, name: str, *, required: bool = True,
             aliases: Iterable[str] = ()) -> str:
        """Field ``key`` of ``row`` (``name`` is the canonical name used in messages)."""
        if key is None or key not in row:
            if required:
                raise RowError(f'missing field "{name}"' + did_you_mean(row, [name, *aliases]),
                               kind="missing")
            return ""
        return self.value("", row[key], required=required, key=key)


