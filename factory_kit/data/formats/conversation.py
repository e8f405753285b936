"""Shared validation for multi-turn conversations (ShareGPT and OpenAI messages)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from factory_kit.data.formats.cot import with_reasoning
from factory_kit.data.quality import FieldReader, RowError, json_type

USER, ASSISTANT, SYSTEM, OBSERVATION, FUNCTION = "user", "assistant", "system", "observation", "function_call"
ROLES = {
    "human": USER, "user": USER, "患者": USER, "用户": USER,
    "gpt": ASSISTANT, "assistant": ASSISTANT, "chatgpt": ASSISTANT, "bot": ASSISTANT, "model": ASSISTANT,
    "bard": ASSISTANT, "bing": ASSISTANT, "医生": ASSISTANT, "助手": ASSISTANT,
    "system": SYSTEM, "developer": SYSTEM,
    "observation": OBSERVATION, "tool": OBSERVATION, "function_response": OBSERVATION, "ipython": OBSERVATION,
    "function_call": FUNCTION, "function": FUNCTION,
}
ODD, EVEN = (USER, OBSERVATION), (ASSISTANT, FUNCTION)
#: Counter key of assistant turns whose text was dropped because they also hold tool_calls
TOOL_TEXT_DROPPED = "tool_call_text_dropped"
#: Counter key of conversations whose last turn, an unanswered user turn, was dropped
TRAILING_TURN_DROPPED = "trailing_turn_dropped"


def _call(call: Any) -> Any:
    """One OpenAI tool call as LLaMA-Factory's function_call turn holds it: ``{"name", "arguments"}``
    with the arguments as JSON (OpenAI sends them as a JSON *string*; kept as is when not JSON)."""
    if not isinstance(call, dict):
        return call
    call = call.get("function", call)
    if isinstance(call, dict) and isinstance(call.get("arguments"), str):
        try:
            return {**call, "arguments": json.loads(call["arguments"])}
        except ValueError:
            pass
    return call


TEXT_PARTS = ("text", "input_text", "output_text")


def _part_text(part: Any) -> Any:
    """The text of a content part: OpenAI's ``{"type": "text", "text": ...}``, LLaMA-Factory's
    ``{"type": "text" | "reasoning" | "tool_call", "value": ...}``, or a bare string."""
    if isinstance(part, dict):
        return part.get("text") if "text" in part else part.get("value")
    return part


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return any(_has_text(_part_text(p)) for p in value
                   if not (isinstance(p, dict) and p.get("type") == "tool_call"))
    return False


def _is_text_part(part: Any) -> bool:
    return isinstance(part, str) or (isinstance(part, dict) and part.get("type") in TEXT_PARTS)


def _tool_call_parts(label: str, parts: list) -> list:
    """The calls of LLaMA-Factory's ``{"type": "tool_call", "value": "<JSON {name, arguments}>"}`` parts."""
    calls = []
    for part in parts:
        if not (isinstance(part, dict) and part.get("type") == "tool_call"):
            continue
        value = part.get("value")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise RowError(f"{label} has a tool_call part that is not JSON ({value[:60]!r})", kind="invalid") from None
        calls.append(_call(value))
    return calls


def _content(fields: FieldReader, label: str, value: Any, role: str = USER, reasoning: str = "think") -> str:
    """A turn's text. Content parts are joined (LLaMA-Factory's ``value`` parts as its templates
    join them, back to back; OpenAI's ``text`` parts one per line); an assistant's
    ``reasoning`` parts become a ``<think>`` block before the answer, as the CoT import writes."""
    if not isinstance(value, list):
        return fields.value(label, value)
    texts: list[str] = []
    thoughts: list[str] = []
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else "text" if isinstance(part, str) else json_type(part)
        if kind not in TEXT_PARTS and not (kind == "reasoning" and role == ASSISTANT):
            raise RowError(f"{label} has non-text content ({kind}); only text is imported", kind="type")
        text = _part_text(part)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise RowError(f"{label} has a {kind} part that is not text ({json_type(text)})", kind="type")
        (thoughts if kind == "reasoning" else texts).append(text)
    sep = "" if any(isinstance(p, dict) and "value" in p and "text" not in p for p in value) else "\n"
    answer = fields.value(label, sep.join(texts))
    thought = sep.join(thoughts)
    if not thought.strip():
        return answer
    return with_reasoning(fields.value(f"{label} reasoning", thought), answer, reasoning)


def parse_turns(fields: FieldReader, messages: list, key: str, notes: Counter | None = None,
                reasoning: str = "think") -> tuple[str, list[tuple[str, str]]]:
    """(system, [(role, content)...]) with roles canonical; raises RowError with the reason.

    An assistant message with ``tool_calls`` (or LLaMA-Factory's ``tool_call`` content parts)
    becomes one function_call turn; text next to the calls cannot go in it (LLaMA-Factory's
    sharegpt turns hold one content), so it is dropped and, for a row that converts, counted in
    ``notes[TOOL_TEXT_DROPPED]``. A last user turn nobody answered is dropped (counted in
    ``notes[TRAILING_TURN_DROPPED]``); ``reasoning`` is the --cot-style for reasoning parts."""
    system = ""
    dropped = 0
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict):
            raise RowError(f'"{key}" turn {i} must be an object with a role and a content, got {json_type(msg)}',
                           kind="type")
        role_key = "from" if "from" in msg else "role" if "role" in msg else None
        if role_key is None:
            raise RowError(f'"{key}" turn {i} has no "from"/"role"', kind="missing")
        raw_role = msg[role_key]
        role = ROLES.get(str(raw_role).lower()) if isinstance(raw_role, str) else None
        if role is None:
            raise RowError(f'"{key}" turn {i} has unknown role {raw_role!r} (use human/gpt or user/assistant)',
                           kind="invalid")
        content_key = "value" if "value" in msg else "content" if "content" in msg else None
        content = msg[content_key] if content_key is not None else None
        label = f'"{key}" turn {i} ("{raw_role}")'
        tool_calls = msg.get("tool_calls")
        if role == ASSISTANT and tool_calls:
            if not isinstance(tool_calls, list):
                raise RowError(f'"{key}" turn {i} "tool_calls" must be a list', kind="type")
            calls = [_call(c) for c in tool_calls]
        else:
            calls = _tool_call_parts(label, content) if role == ASSISTANT and isinstance(content, list) else []
        if calls:
            turns.append((FUNCTION, json.dumps(calls, ensure_ascii=False)))
            if _has_text(content):
                dropped += 1
            continue
        if content_key is None:
            raise RowError(f'"{key}" turn {i} has no "value"/"content"', kind="missing")
        if role == SYSTEM:
            if turns:
                raise RowError(f"{label} is a system message after the first turn; only the first may be system")
            blank = content in (None, "") or (isinstance(content, list) and not _has_text(content)
                                               and all(_is_text_part(p) for p in content))
            system = "" if blank else _content(fields, label, content)
            continue
        turns.append((role, _content(fields, label, content, role, reasoning)))
    if not turns:
        raise RowError(f'field "{key}" has no user/assistant turns', kind="empty")
    for i, (role, _) in enumerate(turns):
        want = ODD if i % 2 == 0 else EVEN
        if role not in want:
            if i == 0:
                raise RowError(f'"{key}" starts with an {role} turn; a conversation must start with the user')
            raise RowError(f'"{key}" turns {i} and {i + 1} are both {"user" if role in ODD else "assistant"} turns '
                           "(turns must alternate user/assistant)")
    trimmed = False
    if len(turns) % 2:
        # A trailing question nobody answered: keep the answered part when it ends with an
        # answer (not with a tool call, whose result never came).
        if len(turns) < 3 or turns[-1][0] != USER or turns[-2][0] != ASSISTANT:
            raise RowError(f'"{key}" ends with a user turn (no answer to learn from)')
        turns, trimmed = turns[:-1], True
    if notes is not None:
        if dropped:
            notes[TOOL_TEXT_DROPPED] += dropped
        if trimmed:
            notes[TRAILING_TURN_DROPPED] += 1
    return system, turns


def tools_text(fields: FieldReader, row: dict) -> str:
    value = row.get("tools")
    if value in (None, "", []):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    raise RowError(f'field "tools" must be a JSON string or list, got {json_type(value)}', kind="type")
