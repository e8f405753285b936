"""Alpaca-style QA: instruction / input / output (+ system, history) and common aliases."""

from __future__ import annotations

from typing import Any

from ..quality import RowError, json_type
from .base import Importer, alpaca_entry, sharegpt_entry

INSTRUCTION = ("instruction", "question", "prompt", "query", "问题", "指令", "提问", "题目", "问")
INPUT = ("input", "context", "输入", "上下文", "补充信息")
OUTPUT = ("output", "answer", "response", "completion", "回答", "答案", "输出", "回复", "答")
SYSTEM = ("system", "system_prompt", "系统", "系统提示")
HISTORY = ("history", "历史")


class AlpacaImporter(Importer):
    name = "alpaca"
    output = "alpaca"
    text_fields = ("system", "instruction", "input", "output")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # LLaMA-Factory's JSON loader cannot mix empty and non-empty `history` lists across
        # rows, so an import with any multi-turn row is written as sharegpt conversations
        # (the same turns LLaMA-Factory's alpaca converter would build).
        self.multi_turn = False

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return bool(keys & {k.lower() for k in INSTRUCTION}) and bool(keys & {k.lower() for k in OUTPUT})

    def convert(self, row: dict) -> list[dict[str, Any]]:
        instruction = self.field(row, "instruction", INSTRUCTION[1:])
        inp = self.field(row, "input", INPUT[1:], required=False)
        output = self.field(row, "output", OUTPUT[1:])
        system = self.field(row, "system", SYSTEM[1:], required=False)
        history = self._history(row)
        out = {"instruction": instruction, "input": inp, "output": output, "system": system}
        if history:
            out["history"] = history
        return [out]

    def _history(self, row: dict) -> list[list[str]]:
        key = self.key(row, "history", HISTORY[1:])
        if key is None or row.get(key) in (None, "", []):
            return []
        value = row[key]
        if not isinstance(value, list):
            raise RowError(f'field "{key}" must be a list of [question, answer] pairs, got {json_type(value)}',
                           kind="type")
        pairs = []
        for i, pair in enumerate(value, 1):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise RowError(f'field "{key}" item {i} must be a [question, answer] pair', kind="type")
            pairs.append([self.f.value(f'"{key}" item {i} question', pair[0]),
                          self.f.value(f'"{key}" item {i} answer', pair[1])])
        return pairs

    def texts(self, out: dict[str, Any]) -> list[str]:
        if "conversations" in out:
            return [out["system"]] + [m["value"] for m in out["conversations"]]
        texts = super().texts(out)
        for q, a in out.get("history", ()):
            texts += [q, a]
        return texts

    def finalize(self, out: dict[str, Any]) -> dict[str, Any]:
        """The row as written: alpaca, or sharegpt once the import has turned multi-turn."""
        if out.get("history"):
            self.multi_turn = True
        if self.multi_turn:
            return to_sharegpt(out)
        out.pop("history", None)
        return out

    def entry(self) -> dict[str, Any]:
        return sharegpt_entry() if self.multi_turn else alpaca_entry()


def to_sharegpt(out: dict[str, Any]) -> dict[str, Any]:
    """An alpaca row as LLaMA-Factory's alpaca converter sees it, in sharegpt form."""
    if "conversations" in out:
        return out
    turns = []
    for q, a in out.get("history") or ():
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    prompt = "\n".join(p for p in (out["instruction"], out["input"]) if p)
    turns += [{"from": "human", "value": prompt}, {"from": "gpt", "value": out["output"]}]
    rest = {k: v for k, v in out.items() if k not in ("instruction", "input", "output", "system", "history")}
    return {"conversations": turns, "system": out.get("system", ""), "tools": "", **rest}
