"""An import's outputs, all or nothing: every file (rows, splits, benchmark, quarantine, meta) is
written to a temp file first and staged here; :meth:`Outputs.commit` then renames them all into
place and updates the registry in one short, journalled step (:func:`registry.commit`), with
Ctrl-C held off until it is done. Before that nothing the user sees has changed, and
:meth:`Outputs.discard` removes the temp files.

:func:`clean_stale` is what an import does first: finish a commit a killed import left, and
remove temp files of imports that died (their pid, in the temp name, is gone; a live import's
temp files are never touched).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from factory_kit.core import interrupts, io, paths
from factory_kit.data import registry

# io.temp_path_for's names: .FINAL.PID.HEX.tmp
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(io.TEMP_SUFFIX) + "$")


class Outputs:
    """The files and registry entries one import (or removal) will commit together."""

    def __init__(self, project: Path, name: str):
        self.project, self.name = project, name
        self.replace: dict[Path, Path] = {}  # final -> complete temp file
        self.remove: list[Path] = []  # finals to delete
        self.entries: dict[str, dict[str, Any]] = {}  # registry entries to set
        self.drop: list[str] = []  # registry entries to delete
        self._temps: list[Path] = []  # every temp file made, for discard
        self.committed = False

    def temp(self, final: Path) -> Path:
        """A new temp path beside ``final`` (its folder made), removed by :meth:`discard`."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = io.temp_path_for(final)
        self._temps.append(tmp)
        return tmp

    def put(self, final: Path, tmp: Path) -> None:
        """``tmp`` (complete) is to replace ``final``."""
        self.replace[final] = tmp
        if final in self.remove:
            self.remove.remove(final)

    def delete(self, final: Path) -> None:
        """``final`` is to go (what was staged for it too)."""
        tmp = self.replace.pop(final, None)
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if final not in self.remove:
            self.remove.append(final)

    def staged(self, final: Path) -> Path | None:
        """The temp file that holds ``final``'s new content, None when nothing is staged."""
        return self.replace.get(final)

    def discard(self) -> None:
        """Remove every temp file (before a commit, on an error or interrupt)."""
        if self.committed:
            return
        for tmp in [*self._temps, *self.replace.values()]:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def commit(self) -> bool:
        """Put everything in place as one step; returns whether Ctrl-C (or SIGTERM) came during
        it (the commit completed all the same)."""
        interrupts.pause_point("commit")
        with interrupts.deferred() as received:
            registry.commit(paths.registry_dir(self.project), self.name, [(t, f) for f, t in self.replace.items()],
                            [p for p in self.remove if p not in self.replace and os.path.lexists(p)], self.entries, self.drop)
            self.committed = True
        for tmp in self._temps:  # temp files made and never staged (none, normally)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return bool(received)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:  # a zombie (killed, not yet reaped) writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def clean_stale(project: Path) -> str | None:
    """Finish commits killed imports left, then remove temp files of dead processes in the data
    and registry folders. Returns one line saying what was cleaned, None when nothing was."""
    reg_dir = paths.registry_dir(project)
    folders = [paths.data_dir(project), paths.quarantine_dir(project), paths.benchmark_dir(project),
               paths.meta_dir(project), reg_dir]
    candidates = [p for d in folders if d.is_dir() for p in d.iterdir() if _TEMP_NAME.match(p.name)]
    if not candidates and not registry.journals(reg_dir):
        return None  # the common case: no lock taken, nothing created
    removed, size = [], 0
    with registry.locked(reg_dir):  # no live process is mid-commit now
        finished = registry.recover_locked(reg_dir)
        for p in candidates:
            m = _TEMP_NAME.match(p.name)
            if m is None or _pid_alive(int(m["pid"])):
                continue
            with contextlib.suppress(FileNotFoundError):
                size += p.stat().st_size
                p.unlink()
                removed.append(p)
    parts = list(finished)
    if removed:
        where = sorted({paths.relative(p.parent, project) + "/" for p in removed})
        parts.append(f"removed {len(removed)} temp file{'s' if len(removed) != 1 else ''} ({_size(size)}) "
                     f"that interrupted runs left in {', '.join(where)}")
    return "; ".join(parts) if parts else None
