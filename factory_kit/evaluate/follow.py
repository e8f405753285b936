"""Follow a child process's own tqdm bar (lm-eval, llamafactory-cli do_predict) with
factory-kit's progress bar, so `eval` shows items done, rate and ETA instead of nothing.

The child's output reaches us line by line (``launch.run`` reads it with universal newlines,
so each tqdm redraw is a line): a redraw of the bar we follow moves ours and is not echoed
again while our bar is on screen; every other line is echoed and logged as before.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from factory_kit.core import progress

# Lines never worth a user's screen, even with --verbose (the .log keeps them): lm-eval runs
# `git describe` in its working folder to record a commit, and outside a git repository git says so.
NOISE = re.compile(r"^fatal: not a git repository")
# "Running loglikelihood requests:  45%|████▌     | 22/48 [00:01<00:01, 19.2it/s]"
_FRAME = re.compile(r"^(?P<desc>[^|]*?):?\s*\d+%\|[^|]*\|\s*(?P<done>\d+)/(?P<total>\d+)\b")


def tqdm_frame(line: str) -> tuple[str, int, int] | None:
    """(description, done, total) of one tqdm redraw, or None for any other line."""
    m = _FRAME.match(line)
    if m is None:
        return None
    return m.group("desc").strip(), int(m.group("done")), int(m.group("total"))


def follower(bar: progress.Bar, wanted: Callable[[str], bool], *, scale: int | None = None,
             echo: bool = True) -> Callable[[str], None]:
    """An ``on_line`` for ``launch.run(..., echo=False)``: frames whose description is ``wanted``
    move ``bar`` (rescaled to ``scale`` units when given, e.g. lm-eval requests -> items)."""
    shown = progress.enabled()

    def on_line(line: str) -> None:
        frame = tqdm_frame(line)
        if frame is not None and frame[2] and wanted(frame[0]):
            _, done, total = frame
            if scale is not None:
                done, total = round(scale * done / total), scale
            bar.update(completed=done, total=total)
            if shown:
                return
        if echo and not NOISE.match(line):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return on_line
