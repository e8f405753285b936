"""Option letters of multiple-choice items: the one place that says which letters exist and
how they are written, read and parsed.

The importer (``formats/mcq.py``) and the evaluator (``evaluate/benchmarks.py`` for task files,
prompts and scoring, ``evaluate/extract.py`` for generated answers) all use it, so an item the
importer accepts is one the evaluator can run and score. Standard library only: lm-eval's child
process imports it (through ``extract.py``) when it scores generated answers.
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase  # A..Z: at most 26 options
MAX_OPTIONS = len(LETTERS)
LETTER_CLASS = f"[{LETTERS[0]}-{LETTERS[-1]}]"
# "B", "AC", "A,C", "A、C", "A/C", "A;C", "A和C"
ANSWER_SEPARATORS = ",，、/;；和及 "

_PREFIX = re.compile(r"^\s*[\(（]?([A-Za-z])[\)）]?\s*[.．、:：)）]\s*")
_ANSWER_PREFIX = re.compile(
    r"^\s*[【\[]?\s*(?:参考答案|标准答案|正确答案|答案|answer|correct answer)\s*[】\]]?\s*(?:是|为|is)?\s*[:：]?\s*", re.I)
# exam banks write the letter(s) in brackets: (C), （C）, 【C】, [A、C]
_ANSWER_BRACKETS = re.compile(r"^[\(（【\[]\s*(.*?)\s*[\)）】\]]$")
_SEP = "[" + re.escape(ANSWER_SEPARATORS) + "]"
_ANSWER_LETTERS = re.compile(rf"^{LETTER_CLASS}(?:\s*{_SEP}?\s*{LETTER_CLASS})*$")


def letter(index: int) -> str:
    """The letter of the option at ``index`` (0 -> "A"); IndexError past Z."""
    if not 0 <= index < MAX_OPTIONS:
        raise IndexError(f"option {index + 1}: at most {MAX_OPTIONS} options (A-Z)")
    return LETTERS[index]


def letters(count: int) -> str:
    """The first ``count`` letters: the option keys of an item with ``count`` options."""
    return LETTERS[:count]


def is_letter(key: str) -> bool:
    return len(key) == 1 and key in LETTERS


def normalize_key(key: object) -> str:
    """An option key as written in a file (" b", "B") -> "B" (check it with ``is_letter``)."""
    return str(key).strip().upper()


def strip_prefix(text: str, expected: str) -> str:
    """``"B. 黄芪"`` -> ``"黄芪"`` when the prefix is the option's own letter; else unchanged."""
    m = _PREFIX.match(text)
    if m and m.group(1).upper() == expected:
        return text[m.end():].strip()
    return text


_SPACED = re.compile(rf"^\s*({LETTER_CLASS})\s+(?=\S)")


def _own_prefix(text: str, expected: str) -> int | None:
    """Where the text after a written letter starts, when ``text`` begins with ``expected``
    written as an option letter (``B.`` ``B、`` ``(B)`` ``B:`` ``B ``); else None."""
    m = _PREFIX.match(text)
    if m and m.group(1).upper() == expected:
        return m.end()
    m = _SPACED.match(text)
    return m.end() if m and m.group(1) == expected else None


def strip_letters(options: dict[str, str]) -> dict[str, str]:
    """Options (letter -> text) without the letters exports write before them (``B. 黄芪``,
    ``B、黄芪``, ``(B) 黄芪``, ``B: 黄芪``, or ``B 黄芪`` as CMExam writes them), stripped only
    when every option of the item starts with its own letter: then the letters are labels, and
    "A patient...", "E. coli" or "B cells" in an item written without them keep their words."""
    ends = [_own_prefix(text, key) for key, text in options.items()]
    if len(options) < 2 or any(end is None for end in ends):
        return dict(options)
    return {key: text[end:].strip() for (key, text), end in zip(options.items(), ends)}  # type: ignore[misc]


def split_cell(text: str) -> list[str]:
    """Options written in one cell: ``"A. 黄芪\\nB. 黄连"`` or ``"A. 黄芪 B. 黄连 C. 甘草"``.

    Lines split first; within a line, only the letter after the current option's own (B after
    A, ...) starts a new option, so a letter inside an option's text ("维生素C. 缺乏") does not.
    """
    parts: list[str] = []
    for line in text.split("\n"):
        rest = line
        while True:
            m = _PREFIX.match(rest)
            own = m.group(1).upper() if m else ""
            if not is_letter(own) or own == LETTERS[-1]:
                break
            nxt = LETTERS[LETTERS.index(own) + 1]
            found = re.search(rf"(?<![A-Za-z])[\(（]?{nxt}[\)）.．、:：]", rest[m.end():])
            if found is None:
                break
            cut = m.end() + found.start()
            parts.append(rest[:cut])
            rest = rest[cut:]
        parts.append(rest)
    return [p for p in parts if p.strip()]


def parse_answer(text: str) -> list[str] | None:
    """Answer letter(s) as exam banks write them, sorted (``"答案：（A、C）。"`` -> ``["A", "C"]``);
    None when ``text`` is not letters (e.g. the text of an option)."""
    letters_text = _ANSWER_PREFIX.sub("", text).strip().rstrip("。.．").strip().upper()
    bracketed = _ANSWER_BRACKETS.match(letters_text)
    if bracketed:
        letters_text = bracketed.group(1).rstrip("。.．").strip()
    if not _ANSWER_LETTERS.match(letters_text):
        return None
    return sorted(set(re.findall(LETTER_CLASS, letters_text)))


def option_lines(options: dict[str, str]) -> list[str]:
    """How options are shown to a model, in training rows and benchmark prompts alike: ``B. 黄芪``."""
    return [f"{key}. {text}" for key, text in options.items()]
