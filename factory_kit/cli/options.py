"""Options more than one command takes, declared once; and click options built from a stage's
dataclass fields (core/options.py), so a stage's options are declared only in its dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.learning_rate=5e-5 (repeatable).",
)
merged_option = click.option(
    "--merged", is_flag=True, help="Use the merged model from `export` instead of base + adapter.",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")


def _click_option(field: dataclasses.Field) -> Callable[[Callable], Callable]:
    flag = field.metadata["flag"]
    kwargs: dict[str, Any] = {"help": flag.help, "default": field.default, "show_default": flag.show_default}
    if isinstance(field.default, bool):
        kwargs["is_flag"] = True
    elif isinstance(field.default, tuple):
        kwargs["multiple"] = True
    if flag.choices:
        kwargs["type"] = click.Choice(list(flag.choices))
    elif flag.range:
        kwargs["type"] = click.IntRange(*flag.range)
    elif flag.type is not None:
        kwargs["type"] = flag.type
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    return click.option(*flag.flags, field.name, **kwargs)


def from_fields(cls: type) -> Callable[[Callable], Callable]:
    """Add a click option for each field of dataclass ``cls`` that declares one, in field order
    (fields without one come from a shared option, such as ``--merged``)."""
    def decorate(fn: Callable) -> Callable:
        for field in reversed(dataclasses.fields(cls)):
            if "flag" in field.metadata:
                fn = _click_option(field)(fn)
        return fn
    return decorate
