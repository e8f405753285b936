"""Shared validation for multi-turn conversations (ShareGPT and OpenAI messages)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

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


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return any(_has_text(p.get("text") if isinstance(p, dict) else p) for p in value)
    return False


def _content(fields: FieldReader, label: str, value: Any, msg: dict) -> str:
    if isinstance(value, list):  # OpenAI content parts
        texts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                texts.append(part.get("text") or "")
            elif isinstance(part, str):
                texts.append(part)
            else:
                kind = part.get("type") if isinstance(part, dict) else json_type(part)
                raise RowError(f"{label} has non-text content ({kind}); only text is imported", kind="type")
        value = "\n".join(texts)
    return fields.value(label, value)


def parse_turns(fields: FieldReader, messages: list, key: str,
                notes: Counter | None = None) -> tuple[str, list[tuple[str, str]]]:
    """(system, [(role, content)...]) with roles canonical; raises RowError with the reason.

    An assistant message with ``tool_calls`` becomes one function_call turn; text next to the
    calls cannot go in it (LLaMA-Factory's sharegpt turns hold one content), so it is dropped
    and, for a row that converts, counted in ``notes[TOOL_TEXT_DROPPED]``."""
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
        tool_calls = msg.get("tool_calls")
        if role == ASSISTANT and tool_calls:
            if not isinstance(tool_calls, list):
                raise RowError(f'"{key}" turn {i} "tool_calls" must be a list', kind="type")
            calls = [_call(c) for c in tool_calls]
            turns.append((FUNCTION, json.dumps(calls, ensure_ascii=False)))
            if content_key is not None and _has_text(msg[content_key]):
                dropped += 1
            continue
        if content_key is None:
            raise RowError(f'"{key}" turn {i} has no "value"/"content"', kind="missing")
        label = f'"{key}" turn {i} ("{raw_role}")'
        if role == SYSTEM:
            if turns:
                raise RowError(f"{label} is a system message after the first turn; only the first may be system")
            system = _content(fields, label, msg[content_key], msg) if msg[content_key] not in (None, "") else ""
            continue
        turns.append((role, _content(fields, label, msg[content_key], msg)))
    if not turns:
        raise RowError(f'field "{key}" has no user/assistant turns', kind="empty")
    for i, (role, _) in enumerate(turns):
        want = ODD if i % 2 == 0 else EVEN
        if role not in want:
            if i == 0:
                raise RowError(f'"{key}" starts with an {role} turn; a conversation must start with the user')
            raise RowError(f'"{key}" turns {i} and {i + 1} are both {"user" if role in ODD else "assistant"} turns '
                           "(turns must alternate user/assistant)")
    if len(turns) % 2:
        raise RowError(f'"{key}" ends with a user turn (no answer to learn from)')
    if dropped and notes is not None:
        notes[TOOL_TEXT_DROPPED] += dropped
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
