"""Alpaca-style QA: instruction / input / output (+ system, history) and common aliases."""

from __future__ import annotations

from typing import Any

from factory_kit.data.quality import RowError, json_type
from factory_kit.data.formats.base import Importer, alpaca_entry, sharegpt_entry

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
        #: column keys (instruction, input, output, system, history) per key set of the rows seen:
        #: the import's fast path reads rows of a known key set through it
        self.resolved: dict[tuple, tuple] = {}

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return bool(keys & {k.lower() for k in INSTRUCTION}) and bool(keys & {k.lower() for k in OUTPUT})

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        keys = self.resolved.get(tuple(row))
        if keys is None:
            keys = (self.key(row, "instruction", INSTRUCTION[1:]), self.key(row, "input", INPUT[1:]),
                    self.key(row, "output", OUTPUT[1:]), self.key(row, "system", SYSTEM[1:]),
                    self.key(row, "history", HISTORY[1:]))
            if len(self.resolved) < 4096:
                self.resolved[tuple(row)] = keys
        ik, nk, ok, sk, hk = keys
        if ik is None or ok is None:
            self.field(row, "instruction", INSTRUCTION[1:])  # raises the "missing field" reason
            self.field(row, "output", OUTPUT[1:])
        f = self.f
        if f.redact is None:  # hot path: plain strings, normalised inline
            norm = f.normalize
            instruction, output = row[ik], row[ok]
            instruction = norm(instruction) if type(instruction) is str else None
            output = norm(output) if type(output) is str else None
            if not instruction:
                instruction = f.value("", row[ik], key=ik)
            if not output:
                output = f.value("", row[ok], key=ok)
            inp = row[nk] if nk is not None else ""
            inp = (norm(inp) if inp else "") if type(inp) is str else f.value("", inp, required=False, key=nk)
            system = row[sk] if sk is not None else ""
            system = (norm(system) if system else "") if type(system) is str else \
                f.value("", system, required=False, key=sk)
        else:
            instruction = f.value("", row[ik], key=ik)
            inp = f.value("", row[nk], required=False, key=nk) if nk is not None else ""
            output = f.value("", row[ok], key=ok)
            system = f.value("", row[sk], required=False, key=sk) if sk is not None else ""
        history = self._history(row) if hk is not None else []
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
        if "instruction" in out and "history" not in out:
            return [out["system"], out["instruction"], out["input"], out["output"]]
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
