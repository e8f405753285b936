"""What selection reads: a registered pool dataset (rows and the texts to compare) and the
evaluation items (a benchmark file or name, or a registered dataset).

The pool is read through its dataset_info.json entry, so any dataset LLaMA-Factory can load from
a local file works, imported by factory-kit or registered by hand. JSON Lines pools keep only
line offsets and the texts in memory; rows are re-read by offset when written out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from factory_kit.core import paths
from factory_kit.core.errors import FactoryKitError
from factory_kit.data import readers, registry
from factory_kit.data.mcq_options import letters

EMBED_CHARS = 2000  # texts are cut here before embedding: longer adds cost, not topic
OPTION_COLUMNS = tuple(letters(10))


@dataclass
class EvalItem:
    """One evaluation question: ``id`` is ``SOURCE:ITEM_ID``, unique across every --eval given."""

    id: str
    question: str
    options: list[str] = field(default_factory=list)
    subject: str = ""
    answer: str = ""  # the correct option's text, when known

    @property
    def embed_text(self) -> str:
        """Question and option texts (no letters): what the question is about."""
        return "\n".join([self.question, *self.options])[:EMBED_CHARS]


def resolve_dataset(name: str, project: Path) -> tuple[dict[str, Any], Path]:
    """A registered dataset's entry and file; one line naming what is registered when it is not."""
    return registry.local_dataset(name, project, "selection needs a local file")


def _text(value: Any, content_tag: str = "value") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get(content_tag) or "")
    if isinstance(value, list):
        return "\n".join(_text(v, content_tag) for v in value)
    return "" if value is None else str(value)


def row_texts(entry: dict[str, Any]) -> Callable[[dict], tuple[str, str]]:
    """row -> (query text: what the row asks, full text: every field LLaMA-Factory trains on),
    following the entry's ``formatting``/``columns``/``tags`` as LLaMA-Factory does."""
    cols = entry.get("columns") or {}
    if entry.get("formatting", "alpaca") == "alpaca":
        ask = [cols.get("prompt", "instruction"), cols.get("query", "input")]
        rest = [cols.get(k) for k in ("response", "chosen", "rejected", "history", "system")]
        if "columns" not in entry:
            rest[0] = "output"
        ask, rest = [c for c in ask if c], [c for c in rest if c]

        def alpaca(row: dict) -> tuple[str, str]:
            query = "\n".join(t for t in (_text(row.get(c)) for c in ask) if t)
            return query, "\n".join([query, *(_text(row.get(c)) for c in rest)])
        return alpaca

    fmt = entry.get("formatting")
    tags = {"role_tag": "from", "content_tag": "value", "assistant_tag": "gpt"}
    if fmt == "openai":
        tags.update(role_tag="role", content_tag="content", assistant_tag="assistant")
    tags.update({k: v for k, v in (entry.get("tags") or {}).items() if v})
    msg_col = cols.get("messages", "conversations" if fmt == "sharegpt" else "messages")
    extra = [cols.get(k) for k in ("chosen", "rejected", "system") if cols.get(k)]

    def conversation(row: dict) -> tuple[str, str]:
        msgs = row.get(msg_col) if isinstance(row.get(msg_col), list) else []
        ask, every = [], []
        for m in msgs:
            if isinstance(m, dict):
                text = _text(m.get(tags["content_tag"]))
                every.append(text)
                if m.get(tags["role_tag"]) != tags["assistant_tag"]:
                    ask.append(text)
        query = "\n".join(t for t in ask if t)
        return query, "\n".join([*every, *(_text(row.get(c), tags["content_tag"]) for c in extra)])
    return conversation


class Pool:
    """A registered dataset's rows: query texts in memory, rows fetched by index."""

    def __init__(self, name: str, project: Path):
        self.name = name
        self.entry, self.path = resolve_dataset(name, project)
        self._texts_of = row_texts(self.entry)
        self.queries: list[str] = []
        self._offsets: list[int] | None = [] if readers.base_suffix(self.path) in readers.JSONL_EXT \
            and not self.path.name.endswith(".gz") else None
        self._rows: list[dict] = []
        for offset, row in self._scan():
            query, full = self._texts_of(row)
            self.queries.append((query or full)[:EMBED_CHARS])
            if self._offsets is not None:
                self._offsets.append(offset)
            else:
                self._rows.append(row)
        if not self.queries:
            raise FactoryKitError(f"dataset {name!r}: {paths.relative(self.path, project)} has no rows")

    def _scan(self) -> Iterator[tuple[int, dict]]:
        if self._offsets is not None:
            with open(self.path, "rb") as fh:
                offset, number = 0, 0
                for line in fh:
                    number += 1
                    if line.strip():
                        yield offset, _parse(line, self.path, number)
                    offset += len(line)
            return
        for rec in readers.read(self.path):
            if rec.error or not isinstance(rec.obj, dict):
                raise FactoryKitError(f"{rec.source}:{rec.line}: {rec.error or 'not a JSON object'}; "
                                      "fix or re-import the dataset")
            yield 0, rec.obj

    def __len__(self) -> int:
        return len(self.queries)

    def rows(self, indices: list[int]) -> Iterator[tuple[int, dict]]:
        """(index, row) for ``indices`` in the order given."""
        if self._offsets is None:
            for i in indices:
                yield i, self._rows[i]
            return
        with open(self.path, "rb") as fh:
            for i in indices:
                fh.seek(self._offsets[i])
                yield i, _parse(fh.readline(), self.path, i + 1)

    def full_text_of(self, row: dict) -> str:
        return self._texts_of(row)[1]

    def full_text(self, indices: list[int]) -> dict[int, str]:
        return {i: self._texts_of(row)[1] for i, row in self.rows(sorted(indices))}


def _parse(line: bytes, path: Path, number: int) -> dict:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FactoryKitError(f"{path}:{number}: not valid JSON ({exc}); fix or re-import the dataset") from None
    if not isinstance(row, dict):
        raise FactoryKitError(f"{path}:{number}: not a JSON object; fix or re-import the dataset")
    return row


# -- evaluation items ---------------------------------------------------------------------------

def _options(obj: dict) -> tuple[list[str], str]:
    """(option texts in letter order, the answer's text or "")."""
    opts = obj.get("options", obj.get("choices"))
    if isinstance(opts, dict):
        keyed = {str(k).strip().upper(): _text(v) for k, v in opts.items()}
    elif isinstance(opts, list):
        keyed = {letters(len(opts))[i]: _text(v) for i, v in enumerate(opts[:len(OPTION_COLUMNS) * 3])}
    else:
        keyed = {k: _text(obj[k]) for k in OPTION_COLUMNS if obj.get(k) not in (None, "")}
    answer = obj.get("answer")
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(keyed):
        answer = sorted(keyed)[answer]
    return [v for _, v in sorted(keyed.items())], keyed.get(str(answer).strip().upper(), "") if answer else ""


def _item_from(obj: Any, source: str, number: int, fallback: Callable[[dict], tuple[str, str]] | None) -> EvalItem | None:
    if not isinstance(obj, dict):
        return None
    question = obj.get("question", obj.get("Question"))
    options, answer = [], ""
    if isinstance(question, str) and question.strip():
        options, answer = _options(obj)
    elif fallback is not None:
        query, full = fallback(obj)
        question = query or full
    else:
        question = next((obj[k] for k in ("instruction", "prompt", "query", "text") if isinstance(obj.get(k), str)), "")
    if not str(question).strip():
        return None
    item_id = obj.get("id", number)
    return EvalItem(f"{source}:{item_id}", str(question), [o for o in options if o], str(obj.get("subject") or source),
                    answer)


def _items_from_file(path: Path, source: str, fallback=None) -> list[EvalItem]:
    items = []
    for rec in readers.read(path):
        if rec.error:
            raise FactoryKitError(f"{rec.source}:{rec.line}: {rec.error}")
        item = _item_from(rec.obj, source, rec.line, fallback)
        if item is not None:
            items.append(item)
    return items


def load_eval(specs: list[str] | tuple[str, ...], project: Path, flag: str = "--eval") -> list[EvalItem]:
    """Items of every --eval spec: a file, a benchmark name (``data/benchmarks/NAME.jsonl``) or a
    registered dataset name. Refuses an empty result: selecting against nothing is a mistake."""
    if not specs:
        raise FactoryKitError(f"{flag}: name at least one benchmark (data/benchmarks/NAME.jsonl), file or dataset")
    bench_dir = paths.benchmark_dir(project)
    items: list[EvalItem] = []
    for spec in specs:
        candidate = Path(spec).expanduser()
        if not candidate.is_absolute() and not candidate.exists():
            candidate = project / candidate
        if candidate.is_file():
            source = re.sub(r"(\.dev)?\.(jsonl|json|csv|tsv|parquet|xlsx)(\.gz)?$", "", candidate.name)
            found = _items_from_file(candidate, source)
        elif (bench_dir / f"{spec}.jsonl").is_file():
            found = _items_from_file(bench_dir / f"{spec}.jsonl", spec)
        else:
            info = registry.load(paths.registry_dir(project))
            if spec not in info:
                benches = sorted(p.stem for p in bench_dir.glob("*.jsonl") if not p.name.endswith(".dev.jsonl")) \
                    if bench_dir.is_dir() else []
                raise FactoryKitError(
                    f"{flag} {spec!r}: not a file, not a benchmark in {paths.relative(bench_dir, project)} "
                    f"(there: {', '.join(benches) or 'none'}), and not a registered dataset")
            entry, path = resolve_dataset(spec, project)
            found = _items_from_file(path, spec, fallback=row_texts(entry))
        if not found:
            raise FactoryKitError(f"{flag} {spec!r}: no evaluation items in it (no rows with a question or prompt)")
        items.extend(found)
    seen: dict[str, int] = {}
    for item in items:  # the same id twice in one file (or in two): keep both, told apart
        n = seen.get(item.id, 0)
        seen[item.id] = n + 1
        if n:
            item.id = f"{item.id}#{n + 1}"
    return items
