"""Duplicate detection while streaming: exact (hash of normalised text) and near (MinHash/LSH).

Exact dedup keeps one 64-bit hash per accepted row (about 100 bytes each in a dict, so
~100 MB at 1M rows). Near dedup uses datasketch's MinHash over *character* n-grams (word
tokens do not work for Chinese, which has no spaces) and MinHashLSH to find candidates; a
candidate is confirmed only when the estimated Jaccard similarity of the two sketches
reaches the threshold. It keeps every sketch (num_perm x 4 bytes) plus the LSH tables, so
it is opt-in: see docs/data.md for measured memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xxhash

from factory_kit.core.errors import FactoryKitError

DEDUP_MODES = ("exact", "near", "none")
ASCII_DROP = bytes(range(0, 0x30)) + bytes(range(0x3A, 0x41)) + bytes(range(0x5B, 0x61)) + bytes(range(0x7B, 0x80))


def dedup_key(parts: list[str]) -> bytes:
    """What two rows are compared on: their (already normalised) fields, ASCII-lower-cased, with
    ASCII whitespace and punctuation removed, as UTF-8 bytes. C-level string operations
    only: this runs once per row. Full-width punctuation is kept (the zh width policy has
    already made "头痛,发热" and "头痛，发热" the same); near dedup catches the rest."""
    return "".join(parts).encode("utf-8", "surrogatepass").lower().translate(None, ASCII_DROP)


def key_hash(key: bytes) -> int:
    return xxhash.xxh3_64_intdigest(key)


def json_key_hash(body: bytes) -> int:
    """Exact-dedup hash of a row serialised as JSON (without provenance): ASCII-lower-cased,
    escaped newlines and all ASCII punctuation/whitespace (quotes, braces, escapes) removed.
    Same fields, same order, same text up to case, spacing and ASCII punctuation -> same hash."""
    return xxhash.xxh3_64_intdigest(body.replace(b"\\n", b"").lower().translate(None, ASCII_DROP))


def dedup_text(parts: list[str]) -> str:
    return dedup_key(parts).decode("utf-8", "surrogatepass")


class ExactDeduper:
    """``check(text, loc)`` returns the location of the first identical row, or None."""

    def __init__(self) -> None:
        self._seen: dict[int, Any] = {}

    def check(self, text: str | bytes | int, loc: Any) -> Any | None:
        """``text`` may be the key text, its bytes, or its :func:`key_hash` already."""
        if isinstance(text, int):
            h = text
        else:
            h = xxhash.xxh3_64_intdigest(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        first = self._seen.get(h)
        if first is not None:
            return first
        self._seen[h] = loc
        return None

    def check_many(self, hashes: list[int], base: int, lines: list[int]) -> list[tuple[int, Any]]:
        """``check`` for a block of rows given by their hashes (row i at location
        ``base | lines[i]``): [(i, location of the first identical row)] for the duplicates."""
        seen = self._seen
        dups = []
        for i, h in enumerate(hashes):
            first = seen.get(h)
            if first is None:
                seen[h] = base | lines[i]
            else:
                dups.append((i, first))
        return dups

    def __len__(self) -> int:
        return len(self._seen)


def _xxh32(data: bytes) -> int:
    return xxhash.xxh32_intdigest(data)


class NearDeduper:
    """MinHash (character ``ngram``-grams) + LSH; ``check`` -> (loc, similarity) or None."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, ngram: int = 3,
                 exact: bool = True) -> None:
        if not 0.0 < threshold <= 1.0:
            raise FactoryKitError(f"--near-threshold {threshold}: must be in (0, 1], e.g. 0.85")
        if not 1 <= ngram <= 10:
            raise FactoryKitError(f"--near-ngram {ngram}: use 3 to 5 characters for Chinese")
        from datasketch import MinHash, MinHashLSH

        self._MinHash = MinHash
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self._template = MinHash(num_perm=num_perm, hashfunc=_xxh32)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._chunks: list[np.ndarray] = []
        self._chunk_rows = 16384
        self._locs: list[Any] = []
        self._exact = ExactDeduper() if exact else None

    def _sketch(self, text: str | bytes):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogatepass")
        n = self.ngram
        if len(text) <= n:
            shingles = {text}
        else:
            shingles = {text[i:i + n] for i in range(len(text) - n + 1)}
        mh = self._MinHash(num_perm=self.num_perm, hashfunc=_xxh32,
                           permutations=self._template.permutations, scheme=self._template.scheme)
        mh.update_batch([s.encode("utf-8", "surrogatepass") for s in shingles])
        return mh

    def _stored(self, idx: int) -> np.ndarray:
        return self._chunks[idx // self._chunk_rows][idx % self._chunk_rows]

    def check(self, text: str, loc: Any) -> tuple[Any, float] | None:
        if self._exact is not None:
            first = self._exact.check(text, loc)
            if first is not None:
                return first, 1.0
        mh = self._sketch(text)
        best: tuple[Any, float] | None = None
        for idx in self._lsh.query(mh):
            sim = float(np.mean(self._stored(idx) == mh.hashvalues))
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (self._locs[idx], sim)
        if best is not None:
            return best
        idx = len(self._locs)
        if idx % self._chunk_rows == 0:
            self._chunks.append(np.empty((self._chunk_rows, self.num_perm), dtype=mh.hashvalues.dtype))
        self._chunks[-1][idx % self._chunk_rows] = mh.hashvalues
        self._locs.append(loc)
        self._lsh.insert(idx, mh)
        return None


def make(mode: str, threshold: float = 0.85, ngram: int = 3):
    if mode not in DEDUP_MODES:
        raise FactoryKitError(f"--dedup {mode!r}: choose one of {', '.join(DEDUP_MODES)}")
    if mode == "exact":
        return ExactDeduper()
    if mode == "near":
        return NearDeduper(threshold=threshold, ngram=ngram)
    return None
