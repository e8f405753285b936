"""Options declared once, as dataclass fields: the stage's dataclass holds the value, its type,
its default and its help line; the CLI builds its flags from these fields (cli/options.py), so
an option is never listed twice (flag, signature, constructor call, dataclass)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """How a dataclass field appears on the command line."""
    flags: tuple[str, ...]
    help: str
    type: type | None = None  # None: a flag for bool defaults, else text
    choices: tuple[str, ...] = ()
    range: tuple[int, int] | None = None
    metavar: str | None = None
    show_default: bool = False


def option(default: Any, *flags: str, help: str, type: type | None = None, choices: tuple[str, ...] = (),
           range: tuple[int, int] | None = None, metavar: str | None = None, show_default: bool = False) -> Any:
    """A dataclass field that is also a command-line option (a tuple default: repeatable)."""
    return dataclasses.field(default=default, metadata={"flag": Flag(flags, help, type, choices, range, metavar,
                                                                     show_default)})
