"""The LLM judge's pure parts, shared by evaluation (``evaluate/judge.py``) and synthesis
(``synth/``): the criteria, the prompt (``templates/eval/judge.md.j2``) and reading the scores
out of a reply. No network here: each caller sends the prompt through its own client."""

from __future__ import annotations

import json
import re
from typing import Any

CRITERIA = ("accuracy", "relevance", "completeness", "safety")
TEMPLATE = "eval/judge.md.j2"

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def render_prompt(question: str, reference: str | None, answer: str) -> str:
    from factory_kit.core.templates import environment

    return environment().get_template(TEMPLATE).render(question=question.strip(), reference=(reference or "").strip(),
                                                       answer=answer.strip()).strip() + "\n"


def parse_scores(text: str) -> dict[str, Any] | None:
    """The four 1-5 scores from a judge reply (JSON, maybe fenced or after <think>), or None."""
    text = _THINK.sub("", text or "")
    if "<think>" in text:
        text = text.split("</think>")[-1] if "</think>" in text else ""
    candidates = re.findall(r"\{.*?\}", text, re.DOTALL) + re.findall(r"\{.*\}", text, re.DOTALL)
    for chunk in candidates:
        try:
            data = json.loads(chunk)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        scores = {}
        for name in CRITERIA:
            value = data.get(name)
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 5:
                break
            scores[name] = float(value)
        else:
            scores["comment"] = str(data.get("comment", ""))[:500]
            return scores
    return None
