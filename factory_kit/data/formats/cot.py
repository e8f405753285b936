"""Chain-of-thought rows like medical-o1 (``Question``, ``Complex_CoT``, ``Response``).

``cot_style`` decides how the reasoning is kept in the answer:
  think  ``<think>\\n{cot}\\n</think>\\n\\n{response}`` (default): LLaMA-Factory's thinking
         format, which reasoning templates (qwen3, deepseekr1...) train on as thoughts
  plain  ``{cot}\\n\\n{response}``: reasoning as ordinary answer text
  drop   ``{response}``: the reasoning is left out
"""

from __future__ import annotations

from typing import Any

from factory_kit.core.errors import FactoryKitError
from factory_kit.data.formats.base import Importer, alpaca_entry

QUESTION = ("question", "prompt", "instruction", "query", "问题")
COT = ("complex_cot", "cot", "reasoning", "reasoning_content", "thinking", "think", "rationale", "思考", "推理过程")
RESPONSE = ("response", "answer", "output", "回答", "答案")
STYLES = ("think", "plain", "drop")


class CotImporter(Importer):
    name = "cot"
    output = "alpaca"
    text_fields = ("system", "instruction", "input", "output")

    def __init__(self, *args: Any, cot_style: str = "think", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if cot_style not in STYLES:
            raise FactoryKitError(f"--cot-style {cot_style!r}: choose one of {', '.join(STYLES)}")
        self.style = cot_style

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        detect_cot = {"complex_cot", "cot", "reasoning", "reasoning_content", "thinking", "思考", "推理过程"}
        return bool(keys & detect_cot) and bool(keys & set(RESPONSE)) and bool(keys & set(QUESTION))

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        question = self.field(row, "Question", QUESTION)
        response = self.field(row, "Response", RESPONSE)
        output = response if self.style == "drop" else with_reasoning(self.field(row, "Complex_CoT", COT),
                                                                      response, self.style)
        system = self.field(row, "system", (), required=False)
        return [{"instruction": question, "input": "", "output": output, "system": system}]

    def entry(self) -> dict[str, Any]:
        return alpaca_entry()


def with_reasoning(cot: str, response: str, style: str = "think") -> str:
    """An answer with its reasoning kept the --cot-style way (see the module docstring)."""
    if style == "drop":
        return response
    if style == "plain":
        return f"{cot}\n\n{response}"
    return f"<think>\n{cot}\n</think>\n\n{response}"
