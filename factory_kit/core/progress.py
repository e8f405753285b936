"""One progress bar for every long step of factory-kit's own (imports, stats, evaluation).

Rich's bar on a terminal (done, rate, ETA); nothing at all when stderr is not a terminal
(CI logs, pipes, tests) or when ``FACTORY_KIT_PROGRESS=0``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from typing import Any


def _rate_column():
    """Units per second (rich's own speed column is for bytes). Rich is imported only when a
    bar is shown: import workers and quiet runs never pay for it."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")

    return RateColumn()


def enabled() -> bool:
    flag = os.environ.get("FACTORY_KIT_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no", "")
    return sys.stderr.isatty()


class Bar:
    """``advance(n)`` and ``update(total=...)``; a no-op object when progress is off."""

    def __init__(self, progress: Any = None, task_id=None):
        self._progress = progress
        self._task = task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, *, completed: float | None = None, total: float | None = None, description: str | None = None) -> None:
        if self._progress is not None:
            kwargs = {k: v for k, v in (("completed", completed), ("total", total), ("description", description))
                      if v is not None}
            self._progress.update(self._task, **kwargs)


@contextlib.contextmanager
def bar(description: str, total: float | None = None, unit: str = "rows") -> Iterator[Bar]:
    """A progress bar for ``total`` units (None: unknown, shows a count and rate only)."""
    if not enabled():
        yield Bar(None)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TaskProgressColumn(), _rate_column(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield Bar(progress, progress.add_task(description, total=total))
