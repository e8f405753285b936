"""Ctrl-C and SIGTERM around work that writes several files: SIGTERM becomes KeyboardInterrupt (so
``finally`` blocks remove temp files, as they do on Ctrl-C), and a short commit step can hold both
signals off until it is done (never half a commit on screen or on disk).

``pause_point`` is a test-only hook: with ``FACTORY_KIT_TEST_PAUSE_AT=PHASE`` set, a process
reaching PHASE says so on stderr and sleeps, so a test can interrupt it exactly there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

PAUSE_ENV = "FACTORY_KIT_TEST_PAUSE_AT"  # test only: a phase name (importer: read, split, commit, commit-mid)
PAUSE_SECONDS_ENV = "FACTORY_KIT_TEST_PAUSE_SECONDS"  # test only: how long to sleep there (default 30)
_paused: set[str] = set()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a container stopping) raises KeyboardInterrupt like
    Ctrl-C does, so cleanup code runs; the previous handler comes back after."""
    if not _main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM off within the block: they are recorded in the yielded list, not
    acted on, so a short commit step always completes. The caller decides what a recorded signal
    means once the step is done."""
    received: list[int] = []
    if not _main_thread():
        yield received
        return

    def _record(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, _record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pause_point(phase: str) -> None:
    """Test only: stop at ``phase`` when ``FACTORY_KIT_TEST_PAUSE_AT`` names it (see the module
    docstring), the first time only; a no-op otherwise."""
    if os.environ.get(PAUSE_ENV) != phase or phase in _paused:
        return
    _paused.add(phase)
    print(f"paused at {phase} (pid {os.getpid()})", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV) or 30))
