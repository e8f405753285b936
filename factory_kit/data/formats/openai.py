"""OpenAI chat format: ``messages: [{role, content}]`` (system first, tool calls allowed).

Written back in the same shape and registered as ``formatting: sharegpt`` with
role/content/user/assistant/system tags: LLaMA-Factory's ``formatting: openai`` appends
"detailed thinking off" to every system prompt.
"""

from __future__ import annotations

from typing import Any

from factory_kit.data.formats.base import Importer, openai_entry, require_list
from factory_kit.data.formats.conversation import ASSISTANT, FUNCTION, OBSERVATION, USER, parse_turns, tools_text

ROLE = {USER: "user", ASSISTANT: "assistant", OBSERVATION: "tool", FUNCTION: "function_call"}


class OpenAIImporter(Importer):
    name = "openai"
    output = "openai"

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return "messages" in keys

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        key = self.key(row, "messages", ("conversations",))
        messages = require_list(row, key, "messages")
        system, turns = parse_turns(self.f, messages, key or "messages", self.notes,
                                      self.options.get("cot_style") or "think")
        if not system and isinstance(row.get("system"), str):
            system = self.f.clean(row["system"])
        out = [{"role": "system", "content": system}] if system else []
        out += [{"role": ROLE[r], "content": c} for r, c in turns]
        return [{"messages": out, "tools": tools_text(self.f, row)}]

    def texts(self, out: dict[str, Any]) -> list[str]:
        return [m["content"] for m in out["messages"]]

    def entry(self) -> dict[str, Any]:
        return openai_entry()
