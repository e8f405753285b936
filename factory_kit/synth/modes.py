"""The modes: what each asks (a prompt template under ``templates/synth/``) and what it makes of
the replies. Knowledge as data: ``SPECS`` names each request kind's template, the JSON it
expects, and a typical reply size per item (for the dry run's estimate).

  docs     chunk a corpus (the text import's chunker), ask N questions per chunk, then answer
           each question from its chunk only (two request kinds: questions, answer)
  topics   a list of departments/topics with a count each: question-answer pairs per topic
  augment  existing rows: ``explain`` (an explanation added to exam items), ``cot`` (a chain of
           thought, kept in its own field and imported in the CoT import's ``<think>`` format),
           ``rewrite`` (the item reworded for variety)
"""

from __future__ import annotations

import csv
import io as _io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from factory_kit.core.errors import FactoryKitError


class ItemError(ValueError):
    """One item of a reply is unusable (the others may be fine)."""


@dataclass(frozen=True)
class Spec:
    template: str
    kind: type  # list: {"items": [...]}; dict: one object
    per_item_tokens: int  # a typical reply size per item, for --dry-run
    fields: tuple[str, ...]  # what an item must carry (strings)


SPECS = {
    "questions": Spec("synth/doc_questions.md.j2", list, 40, ("question",)),
    "answer": Spec("synth/doc_answer.md.j2", dict, 300, ("answer",)),
    "topic": Spec("synth/topic_qa.md.j2", list, 350, ("question", "answer")),
    "explain": Spec("synth/augment_explain.md.j2", dict, 250, ("explanation",)),
    "cot": Spec("synth/augment_cot.md.j2", dict, 400, ("cot",)),
    "rewrite": Spec("synth/augment_rewrite.md.j2", dict, 350, ("question", "answer")),
}
MODES = ("docs", "topics", "augment")
TASKS = ("explain", "cot", "rewrite")
# field aliases models use in place of the asked ones
ALIASES = {"question": ("question", "q", "问题", "query"), "answer": ("answer", "a", "回答", "答案", "response"),
           "explanation": ("explanation", "解析", "analysis"),
           "cot": ("cot", "reasoning", "thinking", "推理过程", "思考")}


@dataclass
class Job:
    """One request to make: a template's variables, the items asked for, where it came from."""

    stage: str
    variables: dict[str, Any]
    expect: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def items_of(stage: str, value: Any) -> tuple[list[dict[str, str]], list[str]]:
    """(usable items, reasons for the unusable ones) from one parsed reply."""
    spec = SPECS[stage]
    values = value if spec.kind is list else [value]
    good, bad = [], []
    for v in values:
        try:
            good.append(_item(spec, v))
        except ItemError as exc:
            bad.append(str(exc))
    return good, bad


def _item(spec: Spec, value: Any) -> dict[str, str]:
    if isinstance(value, str) and len(spec.fields) == 1:
        value = {spec.fields[0]: value}
    if not isinstance(value, dict):
        raise ItemError(f"item is {type(value).__name__}, expected an object with {', '.join(spec.fields)}")
    out = {}
    for name in spec.fields:
        found = next((value[k] for k in ALIASES.get(name, (name,)) if isinstance(value.get(k), str)), None)
        if found is None or not found.strip():
            raise ItemError(f"item has no {name!r} text")
        out[name] = found.strip()
    return out


# -- inputs ------------------------------------------------------------------------------------
def chunks(path: Path, chunk_chars: int) -> Iterator[dict[str, Any]]:
    """Chunks of a corpus (a file or a folder of .txt/.md/.jsonl...), by the text import's chunker;
    each with a stable id ``SOURCE#N`` (its number in its source)."""
    from factory_kit.data import readers
    from factory_kit.data.formats.text import TextImporter
    from factory_kit.data.quality import FieldReader, Normalizer, RowError

    targets = readers.expand(path)
    if isinstance(targets, str):
        raise FactoryKitError(f"{path}: no such file or folder")
    for p in targets:
        importer = TextImporter(FieldReader(Normalizer()), chunk_chars=chunk_chars)
        importer.merge_records = readers.is_text_file(p)
        src = readers.display(p)
        for rec in readers.read(p):
            if not isinstance(rec.obj, dict):
                continue
            try:
                found = importer.convert(rec.obj, rec.line)
            except RowError:
                continue  # a row without text: not a chunk
            for c in found:
                yield {"id": f"{src}#{c['_chunk']}", "text": c["text"], "line": c["_line"]}
        for c in importer.end_source():
            yield {"id": f"{src}#{c['_chunk']}", "text": c["text"], "line": c["_line"]}


def topics(path: Path, default_count: int) -> list[tuple[str, int]]:
    """(topic, count) from YAML (a list of names or {topic: count} / [{topic, count}]) or CSV
    (columns topic[,count]; Chinese headers 科室/主题/数量 too) or plain text (one per line)."""
    if not path.is_file():
        raise FactoryKitError(f"{path}: no such file; give a YAML/CSV/text list of topics with counts")
    text = path.read_text(encoding="utf-8-sig")
    out: list[tuple[str, int]] = []
    if path.suffix.lower() == ".csv":
        for i, row in enumerate(csv.DictReader(_io.StringIO(text)), 2):
            low = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k}
            name = next((low[k] for k in ("topic", "department", "主题", "科室", "name") if low.get(k)), "")
            out.append((name, _count(low.get("count") or low.get("数量") or default_count, path, i)))
    elif path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(text) or []
        if isinstance(data, dict):
            data = data.get("topics", data)
        items = data.items() if isinstance(data, dict) else enumerate(data, 1)
        for key, value in items:
            if isinstance(value, dict):
                out.append((str(value.get("topic") or value.get("department") or ""),
                            _count(value.get("count", default_count), path, key)))
            elif isinstance(key, str):
                out.append((key, _count(value, path, key)))
            else:
                out.append((str(value), default_count))
    else:
        out = [(line.strip(), default_count) for line in text.splitlines() if line.strip()]
    for i, (name, _n) in enumerate(out, 1):
        if not name.strip():
            raise FactoryKitError(f"{path}: entry {i} has no topic name")
    if not out:
        raise FactoryKitError(f"{path}: no topics found")
    return out


def _count(value: Any, path: Path, where: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise FactoryKitError(f"{path}: {where}: count {value!r} is not a whole number") from None
    if n < 1:
        raise FactoryKitError(f"{path}: {where}: count must be at least 1")
    return n


_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def source_rows(path: Path) -> Iterator[dict[str, Any]]:
    """(question, answer) of each row of an imported dataset file (alpaca, sharegpt, openai)."""
    if not path.is_file():
        raise FactoryKitError(f"{path}: no such dataset file (import it first: factory-kit data import)")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue
            qa = _qa(row)
            if qa is not None:
                yield {"id": f"{path.name}:{n}", "question": qa[0], "answer": _THINK_BLOCK.sub("", qa[1]).strip()}


def _qa(row: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str):
        q = "\n".join(p for p in (row["instruction"], row.get("input") or "") if p)
        return q, row["output"]
    for key, role, text, user, bot in (("conversations", "from", "value", "human", "gpt"),
                                       ("messages", "role", "content", "user", "assistant")):
        turns = row.get(key)
        if isinstance(turns, list):
            q = next((t.get(text) for t in turns if isinstance(t, dict) and t.get(role) == user), None)
            a = next((t.get(text) for t in turns if isinstance(t, dict) and t.get(role) == bot), None)
            if isinstance(q, str) and isinstance(a, str):
                return q, a
    return None


# -- outputs -----------------------------------------------------------------------------------
def row_for(task: str, question: str, answer: str, item: dict[str, str]) -> dict[str, Any]:
    """The row written for import (alpaca, or the CoT import's shape for ``cot``)."""
    if task == "explain":
        return {"instruction": question, "input": "", "output": f"{answer}\n\n解析：{item['explanation']}"}
    if task == "cot":
        return {"Question": question, "Complex_CoT": item["cot"], "Response": answer}
    return {"instruction": question, "input": "", "output": answer}
