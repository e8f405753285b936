"""Preference data for DPO (pairs) and KTO (single completions with a good/bad label).

Pairs with string fields (``prompt``/``instruction``/``question`` [+ ``input``], ``chosen``,
``rejected``) are written as alpaca ranking rows. Conversational pairs (LLaMA-Factory's
``conversations`` + ``chosen``/``rejected`` turns, or TRL's ``chosen``/``rejected`` message
lists) are written as sharegpt ranking rows; a single-turn TRL pair is flattened to alpaca.
KTO rows (``completion``/``output`` + ``label``/``kto_tag``) get ``columns.kto_tag``.
One import is one kind: the first accepted row decides, and rows of another kind are
quarantined with the reason.
"""

from __future__ import annotations

from typing import Any

from factory_kit.data.quality import RowError, json_type
from factory_kit.data.formats.alpaca import INPUT, SYSTEM
from factory_kit.data.formats.base import Importer, sharegpt_entry
from factory_kit.data.formats.conversation import parse_turns, tools_text
from factory_kit.data.formats.sharegpt import MESSAGES, TAG

PROMPT = ("prompt", "instruction", "question", "query", "问题")
COMPLETION = ("completion", "output", "response", "answer")
LABEL = ("label", "kto_tag", "desirable")
_TRUE = {"true", "1", "yes", "good", "desirable", "chosen", "好", "是"}
_FALSE = {"false", "0", "no", "bad", "undesirable", "rejected", "差", "否"}


class PreferenceImporter(Importer):
    name = "preference"
    output = "ranking"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kind: str | None = None  # pair | pair_conv | kto

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        return {"chosen", "rejected"} <= keys or (bool(keys & set(LABEL)) and bool(keys & set(COMPLETION))
                                                and bool(keys & set(PROMPT)))

    def _kind_of(self, row: dict) -> str:
        lower = {k.lower() for k in row if isinstance(k, str)}
        if "chosen" in lower and "rejected" in lower:
            ck = self.key(row, "chosen", ())
            conversational = (self.key(row, "conversations", MESSAGES[1:]) is not None
                              or isinstance(row.get(ck), (list, dict)))
            return "pair_conv" if conversational else "pair"
        if lower & set(LABEL):
            return "kto"
        raise RowError('missing field "chosen"/"rejected" (pairs) or "label" (KTO)', kind="missing")

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        kind = self._kind_of(row)
        if kind == "pair_conv":
            out = self._pair_conv(row)
            if "instruction" in out:
                kind = "pair"
        elif kind == "pair":
            out = self._pair(row)
        else:
            out = self._kto(row)
        if self.kind is None:
            self.kind = kind
        elif kind != self.kind:
            names = {"pair": "single-turn pairs", "pair_conv": "multi-turn pairs", "kto": "KTO rows"}
            raise RowError(f"row is one of the {names[kind]} but this import holds {names[self.kind]}; "
                           "import them separately")
        return [out]

    def _prompt(self, row: dict) -> tuple[str, str, str]:
        prompt = self.field(row, "prompt", PROMPT[1:])
        inp = self.field(row, "input", INPUT[1:], required=False)
        system = self.field(row, "system", SYSTEM[1:], required=False)
        return prompt, inp, system

    def _pair(self, row: dict) -> dict[str, Any]:
        prompt, inp, system = self._prompt(row)
        chosen = self.field(row, "chosen", ())
        rejected = self.field(row, "rejected", ())
        if chosen == rejected:
            raise RowError('"chosen" and "rejected" are identical')
        return {"instruction": prompt, "input": inp, "chosen": chosen, "rejected": rejected, "system": system}

    def _answer(self, row: dict, name: str) -> str:
        key = self.key(row, name, ())
        value = row.get(key) if key else None
        if isinstance(value, str):
            return self.f.value(f'field "{key}"', value)
        if isinstance(value, dict):
            value = [value]
        if isinstance(value, list) and value:
            last = value[-1]
            if isinstance(last, dict):
                role = last.get("role", last.get("from"))
                if role not in ("assistant", "gpt"):
                    raise RowError(f'field "{key}" must end with an assistant turn, got {role!r}')
                return self.f.value(f'field "{key}"', last.get("content", last.get("value")))
        if value is None:
            raise RowError(f'missing field "{name}"' if key is None else f'field "{key}" is null', kind="missing")
        raise RowError(f'field "{key}" must be text, a turn or a list of turns, got {json_type(value)}',
                       kind="type")

    def _pair_conv(self, row: dict) -> dict[str, Any]:
        conv_key = self.key(row, "conversations", MESSAGES[1:])
        ck, rk = self.key(row, "chosen", ()), self.key(row, "rejected", ())
        if conv_key is not None:
            prompt_msgs = row[conv_key]
        elif isinstance(row.get("prompt"), list):
            prompt_msgs = row["prompt"]
        elif isinstance(row.get(ck), list) and isinstance(row.get(rk), list):
            c, r = row[ck], row[rk]
            n = 0  # TRL implicit prompt: the shared prefix of chosen and rejected
            while n < min(len(c), len(r)) - 1 and c[n] == r[n]:
                n += 1
            prompt_msgs = c[:n]
        elif isinstance(row.get("prompt"), str):
            prompt_msgs = [{"role": "user", "content": row["prompt"]}]
        else:
            raise RowError('missing the prompt ("conversations" or "prompt")', kind="missing")
        if not isinstance(prompt_msgs, list) or not prompt_msgs:
            raise RowError("the prompt turns must be a non-empty list", kind="type")
        chosen = self._answer(row, "chosen")
        rejected = self._answer(row, "rejected")
        if chosen == rejected:
            raise RowError('"chosen" and "rejected" are identical')
        # validate the prompt as a conversation that still awaits an answer
        system, turns = parse_turns(self.f, list(prompt_msgs) + [{"role": "assistant", "content": chosen}],
                                    conv_key or "prompt", self.notes)
        turns = turns[:-1]
        if len(turns) == 1:  # single turn: plain alpaca ranking
            return {"instruction": turns[0][1], "input": "", "chosen": chosen, "rejected": rejected,
                    "system": system}
        return {"conversations": [{"from": TAG[r], "value": c} for r, c in turns], "system": system,
                "tools": tools_text(self.f, row), "chosen": {"from": "gpt", "value": chosen},
                "rejected": {"from": "gpt", "value": rejected}}

    def _kto(self, row: dict) -> dict[str, Any]:
        prompt, inp, system = self._prompt(row)
        output = self.field(row, "completion", COMPLETION[1:])
        key = self.key(row, "label", LABEL[1:])
        value = row.get(key) if key else None
        if isinstance(value, bool):
            tag = value
        elif isinstance(value, (int, float)) and value in (0, 1):
            tag = bool(value)
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            tag = value.strip().lower() in _TRUE
        else:
            raise RowError(f'field "{key}" must be true/false (desirable or not), got {value!r}', kind="type")
        return {"instruction": prompt, "input": inp, "output": output, "kto_tag": tag, "system": system}

    def texts(self, out: dict[str, Any]) -> list[str]:
        texts = [out.get("system", "")]
        if "conversations" in out:
            texts += [m["value"] for m in out["conversations"]]
            texts += [out["chosen"]["value"], out["rejected"]["value"]]
        else:
            texts += [out["instruction"], out["input"]]
            texts += [out["output"]] if "output" in out else [out["chosen"], out["rejected"]]
        return texts

    def entry(self) -> dict[str, Any]:
        if self.kind == "pair_conv":
            return sharegpt_entry(ranking=True)
        if self.kind == "kto":
            return {"formatting": "alpaca", "ranking": False,
                    "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                "kto_tag": "kto_tag", "system": "system"}}
        return {"formatting": "alpaca", "ranking": True,
                "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                            "rejected": "rejected", "system": "system"}}
