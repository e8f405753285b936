"""Options more than one command takes, declared once; and click options built from a stage's
dataclass fields (core/options.py), so a stage's options are declared only in its dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click


class CatalogChoice(click.Choice):
    """A name from a catalog table (``methods``, ``stages``, ``hardware`` of profiles.yaml), read when the
    command runs (so rows a ``$FACTORY_KIT_CATALOG`` folder adds count), matched without regard to case
    (``--method LoRA``), and listed in ``--help``."""

    def __init__(self, table: str) -> None:
        self.table = table
        super().__init__((), case_sensitive=False)

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        from factory_kit.recipe import catalog

        return tuple(getattr(catalog, self.table)())

    @choices.setter
    def choices(self, value) -> None:  # click.Choice sets it in __init__; the table is the source
        pass


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.learning_rate=5e-5 (repeatable).",
)
merged_option = click.option(
    "--merged", is_flag=True, help="Use the merged model from `export` instead of base + adapter.",
)

gguf_option = click.option("--gguf", default=None, is_flag=False, flag_value="", metavar="[TYPE|FILE]",
                           help="Use the exported GGUF through llama-cpp-python: the recipe's first "
                                "`export.gguf` type, a type (q4_k_m) or a .gguf file.")

json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")


def announce_recipe(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Argument callback: when a bare recipe name (`tcm-lora`) picked the project's recipe or a shipped
    one, say which on stderr (one line); the value passes on unchanged. Paths say nothing, and a name
    that resolves to nothing is left for the command to report in its own words."""
    from factory_kit.core.console import err_console
    from factory_kit.core.errors import FactoryKitError
    from factory_kit.recipe.load import locate

    for name in value if isinstance(value, tuple) else (value,):
        try:
            note = locate(name).note() if name else None
        except FactoryKitError:
            continue
        if note:
            err_console.print(note, style="dim", markup=False, soft_wrap=True)
    return value


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
