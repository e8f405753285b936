"""The journal: every paid answer, on disk, before it is used; it is also the cache.

One JSON object per line, keyed by a hash of the full request (server, model, messages,
parameters; never the key). A line is written with one ``write`` on an ``O_APPEND`` descriptor
under an exclusive lock on ``PATH.lock`` and fsync'd before the answer is handed back, so:
a re-run finds every answer already paid for; kill -9 at any moment loses at most the
request in flight (never a paid answer that was used); two runs sharing a journal interleave
whole lines. A torn last line (a writer killed mid-write) is skipped on reading, and the next
writer starts on a fresh line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any


def request_key(base_url: str, model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The cache key of a request: everything that decides the answer, nothing secret."""
    body = {"base_url": base_url.rstrip("/"), "model": model, "messages": messages, "params": params}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


class Journal:
    """``get(key)`` an answer already paid for (this run's or another's); ``append(entry)``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._entries: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self._lock = threading.Lock()
        self.torn = 0  # unreadable lines skipped (a killed writer's last line)
        self.refresh()

    def __len__(self) -> int:
        return len(self._entries)

    def refresh(self) -> None:
        """Read what was appended since the last read (by this process or another)."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read()
            except FileNotFoundError:
                return
            end = data.rfind(b"\n") + 1  # a line without its newline may still be being written
            for line in data[:end].splitlines():
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    self.torn += 1
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("key"), str) and "response" in entry:
                    self._entries.setdefault(entry["key"], entry)
            self._offset += end

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.refresh()
            entry = self._entries.get(key)
        return entry

    def append(self, entry: dict[str, Any]) -> None:
        """Durably append one entry (one line) before the caller uses it."""
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock, open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        line = b"\n" + line  # a torn line before us: never glue onto it
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            self._entries.setdefault(entry["key"], entry)
