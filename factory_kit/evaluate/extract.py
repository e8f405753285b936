"""Answer-letter extraction for generated multiple-choice answers (reasoning models).

This file is self-contained on purpose: factory-kit copies it next to the lm-eval task YAMLs
it generates, and lm-eval loads it from there (``process_results: !function fk_mcq.process_results``).
"""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# "答案是 B", "答案：B", "Answer: B", "选B", "正确答案为(B)"...
_EXPLICIT = re.compile(
    r"(?:答案|正确答案|正确选项|选项|answer|选择|应选|选)\s*(?:是|为|应为|应该是|:|：)?\s*[（(\[【]?\s*([A-Z])(?![A-Za-z])",
    re.IGNORECASE,
)
_STANDALONE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")


def final_answer_text(text: str) -> str | None:
    """The part of a generation after the reasoning: text after the last ``</think>``.

    A ``<think>`` that never closes means the model ran out of tokens while thinking: there is
    no answer (None), rather than a letter picked out of the reasoning.
    """
    text = text or ""
    if _THINK_CLOSE in text:
        return text.rsplit(_THINK_CLOSE, 1)[1]
    if _THINK_OPEN in text:
        return None
    return text


def extract_letter(text: str, letters: list[str]) -> str | None:
    """The answer letter in ``text`` (after any reasoning), or None when there is none."""
    answer = final_answer_text(text)
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
    letter = extract_letter(text, list(doc["letters"]))
    return {"acc": 1.0 if letter is not None and letter == doc["answer"] else 0.0}
