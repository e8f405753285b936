"""One importer per source format, and format detection.

File types (JSON Lines, JSON, CSV/TSV, Parquet, Excel, text, datasets folders, hub ids) are
read by :mod:`.files`; row shapes (alpaca, sharegpt, openai, cot, mcq, text, preference) are
converted by the importer classes here.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from factory_kit.data.formats.alpaca import AlpacaImporter
from factory_kit.data.formats.base import Importer
from factory_kit.data.formats.cot import CotImporter
from factory_kit.data.formats.mcq import McqImporter
from factory_kit.data.formats.openai import OpenAIImporter
from factory_kit.data.formats.preference import PreferenceImporter
from factory_kit.data.formats.sharegpt import SharegptImporter
from factory_kit.data.formats.text import TextImporter

# Detection order matters: the more specific shapes first (a preference pair may also have
# conversations, an exam item also has question/answer, a CoT row question/response).
IMPORTERS: dict[str, type[Importer]] = {
    "preference": PreferenceImporter,
    "openai": OpenAIImporter,
    "sharegpt": SharegptImporter,
    "cot": CotImporter,
    "mcq": McqImporter,
    "alpaca": AlpacaImporter,
    "text": TextImporter,
}
# The rows each format writes: files of one import may differ in format only when they write the
# same rows (one registry entry). CoT rows are written as alpaca rows; exam items are not mixed
# with others (their benchmark file lines up with their rows, one for one).
DATASET_SHAPE = {"alpaca": "alpaca", "cot": "alpaca", "mcq": "mcq", "sharegpt": "sharegpt", "openai": "openai",
                 "text": "text", "preference": "preference"}
FORMATS = ("alpaca", "sharegpt", "openai", "cot", "mcq", "text", "preference", "hf")
HINTS = {
    "alpaca": "instruction/output (or question/answer, prompt/response, query/response, 问题/答案)",
    "sharegpt": "conversations: [{from, value}]",
    "openai": "messages: [{role, content}]",
    "cot": "Question/Complex_CoT/Response",
    "mcq": "question + options (or A/B/C/D columns) + answer",
    "text": "text (or .txt/.md files)",
    "preference": "prompt + chosen/rejected, or prompt + completion + label (KTO)",
}


def detect_row(keys: Iterable[str]) -> str | None:
    lower = {k.lower() for k in keys if isinstance(k, str)}
    for name, cls in IMPORTERS.items():
        if cls.detect(lower):
            return name
    return None


def detect(rows: Iterable[dict]) -> tuple[str | None, Counter]:
    """Majority format of sample rows (ties go to the earlier, more specific format)."""
    votes: Counter = Counter()
    for row in rows:
        name = detect_row(row.keys())
        if name:
            votes[name] += 1
    if not votes:
        return None, votes
    order = list(IMPORTERS)
    best = max(votes.items(), key=lambda kv: (kv[1], -order.index(kv[0])))[0]
    return best, votes


__all__ = ["DATASET_SHAPE", "IMPORTERS", "FORMATS", "HINTS", "Importer", "detect", "detect_row"]
