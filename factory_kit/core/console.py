"""Shared terminal output for the CLI modules: rich consoles and the error boundary."""

from __future__ import annotations

import functools
import sys

from rich.console import Console
from rich.markup import escape

from factory_kit.core.errors import FactoryKitError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    """One yellow line on stderr for what should be fixed but need not stop the command."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def error(exc: FactoryKitError) -> None:
    """The one-line form of a user error (what ``friendly`` prints before exiting)."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)


def friendly(fn):
    """FactoryKitError -> one red line on stderr and its exit code: never a traceback for user errors.

    The message is escaped: paths and values like ``[tcm_qa]`` must print as written, not as markup.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FactoryKitError as exc:
            error(exc)
            sys.exit(exc.exit_code)
    return wrapper
