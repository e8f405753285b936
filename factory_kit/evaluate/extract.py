"""Answer-letter extraction for generated multiple-choice answers (reasoning models).

lm-eval's child process imports it too (``process_results: !function fk_mcq.process_results``,
a one-line hook factory-kit writes next to its task YAMLs), so keep its imports light: the
option letters come from :mod:`factory_kit.data.mcq_options` (standard library only).
"""

from __future__ import annotations

import re

from factory_kit.data.mcq_options import LETTER_CLASS

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# "答案是 B", "答案：B", "Answer: B", "选B", "正确答案为(B)"...
_EXPLICIT = re.compile(
    rf"(?:答案|正确答案|正确选项|选项|answer|选择|应选|选)\s*(?:是|为|应为|应该是|:|：)?\s*[（(\[【]?\s*({LETTER_CLASS})(?![A-Za-z])",
    re.IGNORECASE,
)
_STANDALONE = re.compile(rf"(?<![A-Za-z])({LETTER_CLASS})(?![A-Za-z])")


def final_answer_text(text: str, think: tuple[str, str] | list[str] | None = None) -> str | None:
    """The part of a generation after the reasoning: text after the last ``</think>`` (or the
    closing marker of ``think``, the model family's (open, close) from the model catalog).

    An opening marker that never closes means the model ran out of tokens while thinking: there is
    no answer (None), rather than a letter picked out of the reasoning.
    """
    text = text or ""
    opening, closing = think or (_THINK_OPEN, _THINK_CLOSE)
    if closing in text:
        return text.rsplit(closing, 1)[1]
    if opening and opening in text:
        return None
    return text


def extract_letter(text: str, letters: list[str], think: tuple[str, str] | list[str] | None = None) -> str | None:
    """The answer letter in ``text`` (after any reasoning), or None when there is none."""
    answer = final_answer_text(text, think)
    if answer is None:
        return None
    allowed = {letter.upper() for letter in letters}
    for match in _EXPLICIT.finditer(answer):
        letter = match.group(1).upper()
        if letter in allowed:
            return letter
    for match in _STANDALONE.finditer(answer):
        if match.group(1) in allowed:
            return match.group(1)
    return None


def process_results(doc, results):
    """lm-eval hook for ``generate_until`` tasks: 1.0 when the extracted letter is the answer."""
    text = results[0] if results else ""
    letter = extract_letter(text, list(doc["letters"]), doc.get("think"))
    return {"acc": 1.0 if letter is not None and letter == doc["answer"] else 0.0}
