"""Multiple-choice exam items -> SFT rows, plus a benchmark row for evaluation.

Accepted shapes: ``options``/``choices`` as a list (``["黄芪", ...]`` or ``["A. 黄芪", ...]``)
or an object (``{"A": ..., "B": ...}``), or option columns ``A``, ``B``, ``C``... (exam-bank
spreadsheets); ``answer`` as letter(s) (``"B"``, ``"AC"``, ``"A,C"``, ``["A", "C"]``,
``"答案：B"``, ``"（B）"``, ``"(B)"``, ``"B."``, ``"【答案】B"``) or the text of the right option; optional explanation, subject and id.

The benchmark row (``data/benchmarks/NAME.jsonl``) has exactly
``{"id", "subject", "question", "options": {"A": ...}, "answer": "B", "explanation"}``.
"""

from __future__ import annotations

import re
from typing import Any

import xxhash

from factory_kit.data import mcq_options
from factory_kit.data.mcq_options import LETTERS
from factory_kit.data.quality import RowError, json_type
from factory_kit.data.formats.base import Importer, alpaca_entry

QUESTION = ("question", "stem", "题目", "题干", "问题", "prompt")
OPTIONS = ("options", "choices", "选项", "option")
ANSWER = ("answer", "answer_idx", "correct_answer", "label", "答案", "正确答案")
EXPLANATION = ("explanation", "analysis", "解析", "答案解析", "rationale", "explain", "exp")
SUBJECT = ("subject", "category", "科目", "学科", "类别", "exam")
ID = ("id", "qid", "question_id", "编号")
_CJK = re.compile(r"[\u4e00-\u9fff]")


class McqImporter(Importer):
    name = "mcq"
    output = "alpaca"
    text_fields = ("instruction", "output")

    @classmethod
    def detect(cls, keys: set[str]) -> bool:
        has_options = bool(keys & set(OPTIONS)) or {"a", "b"} <= keys
        return has_options and bool(keys & set(ANSWER)) and bool(keys & set(QUESTION))

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        question = self.field(row, "question", QUESTION[1:])
        options = self._options(row)
        answer = self._answer(row, options)
        explanation = self.field(row, "explanation", EXPLANATION[1:], required=False)
        subject = self.field(row, "subject", SUBJECT[1:], required=False)
        id_key = self.key(row, "id", ID[1:])
        raw_id = row.get(id_key) if id_key else None
        if raw_id not in (None, ""):
            qid = str(raw_id)
        else:
            digest = xxhash.xxh64_hexdigest((question + "\x1f" + "\x1f".join(options.values())).encode())
            qid = f"{self.options.get('name') or 'q'}-{digest[:12]}"
        zh = bool(_CJK.search(question))
        multi = len(answer) > 1
        lines = "\n".join(mcq_options.option_lines(options))
        if zh:
            kind = "多项选择题，请选出所有正确答案" if multi else "单项选择题，请选出正确答案"
            intro = f"以下是{subject}{kind}。" if _CJK.search(subject) else f"以下是一道{kind}。"
            output = f"答案：{answer}" + (f"\n\n解析：{explanation}" if explanation else "")
        else:
            kind = "multiple-answer question. Choose all correct answers" if multi else \
                "multiple-choice question. Choose the correct answer"
            intro = f"The following is a {subject + ' ' if subject else ''}{kind}."
            output = f"Answer: {answer}" + (f"\n\nExplanation: {explanation}" if explanation else "")
        bench = {"id": qid, "subject": subject, "question": question, "options": options,
                 "answer": answer, "explanation": explanation}
        return [{"instruction": f"{intro}\n\n{question}\n\n{lines}", "input": "", "output": output,
                 "system": "", "subject": subject, "_benchmark": bench}]

    def _options(self, row: dict) -> dict[str, str]:
        key = self.key(row, "options", OPTIONS[1:])
        opts: dict[str, str] = {}
        if key is not None and row.get(key) not in (None, "", [], {}):
            value = row[key]
            if isinstance(value, str):  # "A. x\nB. y" in one cell
                value = mcq_options.split_cell(value)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if i >= len(LETTERS):
                        raise RowError(f'field "{key}" has more than {len(LETTERS)} options')
                    letter = mcq_options.letter(i)
                    opts[letter] = self.f.value(f'option {letter}', item)
            elif isinstance(value, dict):
                for k in sorted(value, key=mcq_options.normalize_key):
                    letter = mcq_options.normalize_key(k)
                    if not mcq_options.is_letter(letter):
                        raise RowError(f'field "{key}" key {k!r} is not an option letter (A, B, C...)')
                    opts[letter] = self.f.value(f"option {letter}", value[k])
            else:
                raise RowError(f'field "{key}" must be a list or an object of options, got {json_type(value)}',
                               kind="type")
        else:
            lower = {k.lower(): k for k in row if isinstance(k, str)}
            for letter in LETTERS:
                k = row.get(letter) if letter in row else row.get(lower.get(letter.lower(), "\0"))
                col = letter if letter in row else lower.get(letter.lower())
                if col is None:
                    break
                if k in (None, ""):
                    continue  # exam banks leave unused option columns (E, F) blank
                opts[letter] = self.f.value(f'option "{col}"', k)
            if not opts:
                raise RowError('missing field "options" (a list, an object, or columns A, B, C...)',
                               kind="missing")
        if len(opts) < 2:
            raise RowError(f"only {len(opts)} option; a multiple-choice item needs at least 2")
        stripped = mcq_options.strip_letters(opts)  # "A. 黄芪" / "A 黄芪" under A: the letter is not text
        for letter, text in stripped.items():
            if not text and opts[letter]:
                raise RowError(f"option {letter} is empty", kind="empty")
        return stripped

    def _answer(self, row: dict, options: dict[str, str]) -> str:
        key = self.key(row, "answer", ANSWER[1:])
        if key is None or key not in row:
            raise RowError('missing field "answer"', kind="missing")
        value = row[key]
        if value is None:
            raise RowError(f'field "{key}" is null', kind="missing")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise RowError(f'field "{key}" must be option letter(s) like "B", got {json_type(value)} {value!r}',
                           kind="type")
        text = self.f.clean(value)
        if not text:
            raise RowError(f'field "{key}" is empty', kind="empty")
        letters = mcq_options.parse_answer(text)
        if letters is None:
            matches = [k for k, v in options.items() if v == text]
            if not matches:
                raise RowError(f'field "{key}" is {value!r}: not option letter(s) nor the text of an option')
            letters = matches
        missing = [x for x in letters if x not in options]
        if missing:
            raise RowError(f'answer {"".join(letters)} names option {", ".join(missing)}, '
                           f'but the options are {", ".join(options)}')
        return "".join(letters)

    def entry(self) -> dict[str, Any]:
        return alpaca_entry()
