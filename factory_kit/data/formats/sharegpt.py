"""ShareGPT conversations: ``conversations: [{from, value}]`` with an optional ``system``."""

from __future__ import annotations

from typing import Any

from factory_kit.data.formats.alpaca import SYSTEM
from factory_kit.data.formats.base import Importer, require_list, sharegpt_entry
from factory_kit.data.formats.conversation import ASSISTANT, FUNCTION, OBSERVATION, USER, parse_turns, tools_text

MESSAGES = ("conversations", "conversation", "dialog", "dialogue", "对话")
TAG = {USER: "human", ASSISTANT: "gpt", OBSERVATION: "observation", FUNCTION: "function_call"}


class SharegptImporter(Importer):
    name = "sharegpt"
    output = "sharegpt"

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return bool(keys & set(MESSAGES))

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        key = self.key(row, "conversations", MESSAGES[1:] + ("messages",))
        messages = require_list(row, key, "conversations")
        system, turns = parse_turns(self.f, messages, key or "conversations", self.notes,
                                      self.options.get("cot_style") or "think")
        column_system = self.field(row, "system", SYSTEM[1:], required=False)
        return [{"conversations": [{"from": TAG[r], "value": c} for r, c in turns],
                 "system": system or column_system, "tools": tools_text(self.f, row)}]

    def texts(self, out: dict[str, Any]) -> list[str]:
        return [out["system"]] + [m["value"] for m in out["conversations"]]

    def entry(self) -> dict[str, Any]:
        return sharegpt_entry()
