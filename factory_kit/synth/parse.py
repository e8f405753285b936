"""Strict JSON from a model's reply, with exactly one repair path.

First the reply as it is (``json.loads``). If that fails, one repair: drop a ``<think>...</think>``
prefix (or everything up to a lone ``</think>``), take the first fenced ```` ``` ```` block if
there is one, then decode the first JSON value that starts at a ``[`` or ``{`` and ignore any
prose around it. Whatever still fails is quarantined with the reason, never guessed at.
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


class ParseError(ValueError):
    """The reply holds no JSON of the expected kind."""


def strip_think(text: str) -> str:
    text = _THINK.sub("", text, count=1)
    if "</think>" in text and "<think>" not in text.split("</think>")[-1]:
        text = text.rsplit("</think>", 1)[-1]  # a reasoning model that omits the opening tag
    if text.lstrip().startswith("<think>"):
        return ""  # thoughts that never ended: no answer (usually max_tokens too small)
    return text


def parse_json(text: str | None, kind: type = list) -> tuple[Any, bool]:
    """(value, repaired). ``kind`` is list or dict; a dict holding one list is taken as that
    list (JSON mode can only return objects: {"items": [...]}) and vice versa a one-item list."""
    if text is None or not text.strip():
        raise ParseError("empty reply")
    try:
        return _shape(json.loads(text), kind), False
    except (ValueError, ParseError):
        pass
    body = strip_think(text)
    if not body.strip():
        raise ParseError("reply is only <think> reasoning, no answer (raise max_tokens?)")
    fence = _FENCE.search(body)
    if fence:
        body = fence.group(1)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", body):
        try:
            value, _end = decoder.raw_decode(body, match.start())
        except ValueError:
            continue
        try:
            return _shape(value, kind), True
        except ParseError:
            continue
    raise ParseError(f"no JSON {'list' if kind is list else 'object'} in the reply: {_clip(text)}")


def _shape(value: Any, kind: type) -> Any:
    if isinstance(value, kind):
        return value
    if kind is list and isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    if kind is dict and isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    raise ParseError(f"expected a JSON {'list' if kind is list else 'object'}, got {type(value).__name__}")


def _clip(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."
