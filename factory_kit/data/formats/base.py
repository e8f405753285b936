"""What every format importer shares: field lookup with aliases and --columns, and the
registry entries LLaMA-Factory 0.9.5 accepts (complete ``columns`` / ``tags`` maps)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from factory_kit.data.quality import FieldReader, RowError, lookup

# Registry entries, written complete: with a ``columns`` map, LLaMA-Factory sets every
# column left out to None, so a missing key would silently drop that field.
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "observation_tag": "tool", "function_tag": "function_call", "system_tag": "system"}


def alpaca_entry() -> dict[str, Any]:
    return {"formatting": "alpaca", "ranking": False,
            "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}}


def sharegpt_entry(ranking: bool = False) -> dict[str, Any]:
    columns = {"messages": "conversations", "system": "system", "tools": "tools"}
    if ranking:
        columns.update({"chosen": "chosen", "rejected": "rejected"})
    return {"formatting": "sharegpt", "ranking": ranking, "columns": columns, "tags": dict(SHAREGPT_TAGS)}


def openai_entry() -> dict[str, Any]:
    return {"formatting": "sharegpt", "ranking": False, "columns": {"messages": "messages", "tools": "tools"},
            "tags": dict(OPENAI_TAGS)}


class Importer:
    """One source *format* (the shape of a row), independent of the file type it came in."""

    name = "?"
    #: shape of the rows written: alpaca | sharegpt | openai | text | ranking | kto
    output = "alpaca"
    #: fields whose characters count towards --max-chars and dedup, in order
    text_fields: tuple[str, ...] = ()

    def __init__(self, fields: FieldReader, columns: dict[str, str] | None = None, **options: Any):
        self.f = fields
        self.columns = columns or {}
        self.options = options
        self.notes: Counter = Counter()  # things done to converted rows that the report should say
        self._keys: dict[tuple, str | None] = {}

    # -- detection -------------------------------------------------------------------
    @classmethod
    def detect(cls, keys: set[str]) -> bool:  # keys are lower-cased
        raise NotImplementedError

    # -- per row ---------------------------------------------------------------------
    def key(self, row: dict, name: str, aliases: Iterable[str]) -> str | None:
        """The row's key for canonical field ``name``: --columns first, then aliases."""
        mapped = self.columns.get(name)
        if mapped is not None:
            return mapped if mapped in row else None
        sig = (name, *row)  # rows of one file share their keys: resolve once per key set
        found = self._keys.get(sig, "\0")
        if found == "\0":
            found = lookup(row, (name, *aliases))
            if len(self._keys) < 4096:
                self._keys[sig] = found
        return found

    def field(self, row: dict, name: str, aliases: Iterable[str] = (), *, required: bool = True) -> str:
        return self.f.text(row, self.key(row, name, aliases), self.columns.get(name, name),
                           required=required, aliases=aliases)

    def convert(self, row: dict, line: int = 0) -> list[dict[str, Any]]:
        """Output rows (usually one) without provenance; raise RowError with the reason.
        ``line`` is where the row starts in its source (text chunks remember it)."""
        raise NotImplementedError

    def texts(self, out: dict[str, Any]) -> list[str]:
        """The texts of an output row, for --max-chars and dedup."""
        return [out[k] for k in self.text_fields if isinstance(out.get(k), str)]

    def entry(self) -> dict[str, Any]:
        raise NotImplementedError

    def finish(self) -> None:
        """Called after the last row (importers that buffer flush here)."""


def require_list(row: dict, key: str | None, name: str) -> list:
    if key is None or key not in row:
        raise RowError(f'missing field "{name}"', kind="missing")
    value = row[key]
    if value is None:
        raise RowError(f'field "{key}" is null', kind="missing")
    if not isinstance(value, list):
        from factory_kit.data.quality import json_type

        raise RowError(f'field "{key}" must be a list, got {json_type(value)}', kind="type")
    if not value:
        raise RowError(f'field "{key}" is empty', kind="empty")
    return value
