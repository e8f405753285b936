"""Atomic file writes: a reader (LLaMA-Factory, the web UI, another import) sees the old file or
the new one, never half of one, and an interrupt leaves no stray temp file behind.

``atomic_path`` is the building block (write to a hidden temp file beside the target, then
:func:`replace`); ``write_text``, ``write_bytes`` and ``write_json`` cover the common cases.
A replaced file keeps its mode, and a new one gets the umask's (``0666 & ~umask``, 0644 under
umask 022), whatever mode the temp file was created with (``mkstemp`` makes 0600), so other users
and containers can read ``dataset_info.json`` and the data as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def temp_path_for(final: Path) -> Path:
    """A hidden temp name beside ``final``, unique per process and call (concurrent writers of
    the same file never write into each other's temp files)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace(tmp: Path, final: Path) -> None:
    """``os.replace(tmp, final)``, with ``final``'s mode kept when it exists, else the umask's."""
    try:
        mode = stat.S_IMODE(os.stat(final).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode)
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``final`` atomically, on any
    exception (Ctrl-C included) it is removed and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(final)
    try:
        yield tmp
        if fsync and tmp.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: Path, data: bytes, *, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path, text: str, *, fsync: bool = False) -> Path:
    return write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(path: Path, data: Any, *, sort_keys: bool = False, fsync: bool = False) -> Path:
    """Pretty JSON (UTF-8, Chinese kept readable) with a trailing newline."""
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=sort_keys, default=str) + "\n"
    return write_text(path, text, fsync=fsync)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it (keeps mtimes of unchanged
    rendered files stable). Returns whether it wrote."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True
