"""Duplicate detection while streaming: exact (hash of normalised text) and near (MinHash/LSH).

Exact dedup keeps one 64-bit hash per accepted row (about 100 bytes each in a dict, so
~100 MB at 1M rows). Near dedup is MinHash over *character* n-grams (word tokens do not work
for Chinese, which has no spaces) with LSH banding to find candidates; a candidate is confirmed
only when the estimated Jaccard similarity of the two sketches reaches the threshold. It is
vectorised in numpy over blocks of rows and keeps per row 256 bytes of sketch plus 10 band
table slots of 8 bytes (datasketch's MinHash objects and LSH sets, used before, took ~3.7 KB per
row and ran 4-7x slower): bench/dedup_bench.py, docs/data.md. On large JSON Lines files the
import's worker processes sketch the rows (:meth:`NearDeduper.sketch_rows`) and the main process
only looks them up and decides, in file order (:meth:`NearDeduper.check_many`): same result.
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


_M64 = np.uint64


class _BandTable:
    """One LSH band: an open-addressing table (linear probing, no wrap-around; the last slot
    stays empty so probes stop) of uint64 entries ``band key << 32 | row + 1`` (0: empty) in one
    numpy array, read and written a block of keys at a time: 8 bytes per slot at load <= 1/2,
    against ~100+ bytes per entry in datasketch's Python sets."""

    def __init__(self, bits: int = 12) -> None:
        self.bits, self.count = bits, 0
        self.arr = np.zeros((1 << bits) + 64, dtype=np.uint64)

    def get_many(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query positions, stored rows) of every entry whose key equals a query key."""
        q = np.arange(len(keys))
        slots = (keys & _M64((1 << self.bits) - 1)).astype(np.int64)
        found_q, found_r = [], []
        while len(q) > 16:
            e = self.arr[slots]
            occupied = e != 0
            hit = occupied & ((e >> _M64(32)) == keys)
            found_q.append(q[hit])
            found_r.append((e[hit] & _M64(0xFFFFFFFF)).astype(np.int64) - 1)
            q, slots, keys = q[occupied], slots[occupied] + 1, keys[occupied]
        tail_q, tail_r, mv = [], [], memoryview(self.arr)  # the few long probes (runs of one key)
        for qi, s, key in zip(q.tolist(), slots.tolist(), keys.tolist()):
            e = mv[s]
            while e:
                if e >> 32 == key:
                    tail_q.append(qi)
                    tail_r.append((e & 0xFFFFFFFF) - 1)
                s += 1
                e = mv[s]
        found_q.append(np.array(tail_q, dtype=np.int64))
        found_r.append(np.array(tail_r, dtype=np.int64))
        return np.concatenate(found_q), np.concatenate(found_r)

    def add_many(self, keys: np.ndarray, rows: np.ndarray) -> None:
        while (self.count + len(keys)) * 2 > (1 << self.bits):
            self._grow()
        entries = (keys << _M64(32)) | (rows.astype(np.uint64) + _M64(1))
        slots = (keys & _M64((1 << self.bits) - 1)).astype(np.int64)
        while len(entries) > 16:
            if slots.max() >= len(self.arr) - 1:
                self.arr = np.concatenate([self.arr, np.zeros(int(slots.max()) + 2 - len(self.arr), np.uint64)])
            free = np.flatnonzero(self.arr[slots] == 0)
            self.arr[slots[free]] = entries[free]  # several may write one slot: one of them lands
            rest = self.arr[slots] != entries
            self.count += len(entries) - int(np.count_nonzero(rest))
            entries, slots = entries[rest], slots[rest] + 1
        mv = memoryview(self.arr)
        for entry, s in zip(entries.tolist(), slots.tolist()):
            while s < len(mv) - 1 and mv[s]:
                s += 1
            if s >= len(mv) - 1:
                self.arr = np.concatenate([self.arr, np.zeros(64, np.uint64)])
                mv = memoryview(self.arr)
            mv[s] = entry
            self.count += 1

    def _grow(self) -> None:
        """Rebuild at twice the size: entries sorted by home slot land at max(home, previous
        + 1), which is what linear probing gives without wrap-around."""
        old = self.arr[self.arr != 0]
        self.bits += 1
        home = ((old >> _M64(32)) & _M64((1 << self.bits) - 1)).astype(np.int64)
        order = np.argsort(home, kind="stable")
        old, home = old[order], home[order]
        steps = np.arange(len(old), dtype=np.int64)
        pos = np.maximum.accumulate(home - steps) + steps if len(old) else steps
        size = max((1 << self.bits) + 64, int(pos[-1]) + 2 if len(old) else 0)
        self.arr = np.zeros(0, dtype=np.uint64)  # free the old table before the new one
        self.arr = np.zeros(size, dtype=np.uint64)
        self.arr[pos] = old
        self.count = len(old)


class NearDeduper:
    """MinHash over character ``ngram``-grams + LSH banding; ``check`` -> (loc, similarity) or None.

    Vectorised in numpy (docs/data.md has the measured speed and memory): n-gram hashes from the
    text's code points, ``num_perm`` multiply-add hash functions (the min of each is the sketch),
    ``bands`` x ``rows`` of the sketch hashed into one 32-bit key per band, kept in compact
    :class:`_BandTable`\\ s. A candidate counts only when the estimated Jaccard similarity (share
    of equal sketch values; 16 bits of each are kept) reaches ``threshold``. 10 bands of 12 make a
    pair at similarity 0.85 a candidate 78% of the time (0.97 at 0.9), against 46% (0.81) with
    datasketch's choice for 0.85 (8 bands of 16); 16 bands of 8 found a few more but were twice
    as slow on templated rows (big shared buckets). Blocks of
    rows given to :meth:`prepare` are sketched and looked up in one go, then decided one by one,
    in order (a row is compared with the accepted rows before it, earlier in its block too)."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, ngram: int = 3,
                 exact: bool = True, bands: int = 10, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise FactoryKitError(f"--near-threshold {threshold}: must be in (0, 1], e.g. 0.85")
        if not 1 <= ngram <= 10:
            raise FactoryKitError(f"--near-ngram {ngram}: use 3 to 5 characters for Chinese")
        self.threshold, self.num_perm, self.ngram = threshold, num_perm, ngram
        self.bands, self.rows = bands, num_perm // bands
        rng = np.random.default_rng(seed)
        self._a = (rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1))[:, None]
        self._b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)[:, None]
        self._p = rng.integers(0, 1 << 63, ngram, dtype=np.uint64) | _M64(1)
        self._r = rng.integers(0, 1 << 63, (bands, self.rows), dtype=np.uint64) | _M64(1)
        self._tables = [_BandTable() for _ in range(bands)]
        self._chunks: list[np.ndarray] = []
        self._chunk_rows = 16384
        self._locs: list[Any] = []
        self._exact = ExactDeduper() if exact else None
        self._block: Any = None  # the prepared block (see prepare)
        self._pending: list[tuple[int, int]] = []  # (block position, row) accepted, not in the tables yet

    def sketch(self, texts: list[str | bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(sketches (len, num_perm) uint32, band keys (len, bands) uint64 < 2**32)."""
        n = self.ngram
        strs = [t.decode("utf-8", "surrogatepass") if isinstance(t, bytes) else t for t in texts]
        strs = [s if len(s) >= n else s + "\0" * (n - len(s)) for s in strs]  # short text: one n-gram
        lens = np.fromiter(map(len, strs), dtype=np.int64, count=len(strs))
        cps = np.frombuffer("".join(strs).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        m = len(cps) - n + 1
        g = cps[:m] * self._p[0]
        for j in range(1, n):
            g ^= cps[j:j + m] * self._p[j]
        counts = lens - n + 1  # n-grams per text, all inside it
        seg = np.cumsum(counts) - counts
        keep = np.repeat(np.cumsum(lens) - lens - seg, counts) + np.arange(int(counts.sum()))
        g = (g[keep] >> _M64(32)).astype(np.uint32)
        sig = np.empty((len(strs), self.num_perm), dtype=np.uint32)
        step = 64  # texts per slab: keeps the (num_perm x n-grams) temporary in cache
        for lo in range(0, len(strs), step):
            hi = min(lo + step, len(strs))
            a, b = int(seg[lo]), int(seg[hi - 1] + counts[hi - 1])
            h = self._a * g[a:b]
            h += self._b
            sig[lo:hi] = np.minimum.reduceat(h, seg[lo:hi] - a, axis=1).T
        bandv = sig[:, :self.bands * self.rows].reshape(len(strs), self.bands, self.rows).astype(np.uint64)
        return sig, (bandv * self._r).sum(axis=2) >> _M64(32)

    def _flush(self) -> None:
        """Put the previous block's accepted rows into the band tables."""
        if self._pending:
            pos, rows = np.array(self._pending, dtype=np.int64).T
            keys = self._block[2]
            for j, table in enumerate(self._tables):
                table.add_many(keys[pos, j], rows)
            self._pending = []

    def sketch_rows(self, texts: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a worker process hands over for :meth:`prepare_sketched`: (the kept 16 bits of
        each sketch value (len, num_perm) uint16, band keys (len, bands) uint32, exact-dedup
        hashes uint64), sketched 4096 rows at a time to bound the temporaries."""
        n = len(texts)
        sig16 = np.empty((n, self.num_perm), dtype=np.uint16)
        keys = np.empty((n, self.bands), dtype=np.uint32)
        for lo in range(0, n, 4096):
            sig, k = self.sketch(texts[lo:lo + 4096])
            sig16[lo:lo + len(sig)] = sig >> np.uint32(16)
            keys[lo:lo + len(sig)] = k
        exact = np.fromiter(map(xxhash.xxh3_64_intdigest, texts), dtype=np.uint64, count=n)
        return sig16, keys, exact

    def prepare(self, texts: list[str | bytes]) -> None:
        """Sketch a block of rows and look them up at once; the next ``check`` calls with these
        same objects, in this order, use the result (any other text is prepared on its own)."""
        if not texts:
            return
        sig, keys = self.sketch(texts)
        self._lookup(texts, (sig >> np.uint32(16)).astype(np.uint16), keys)

    def prepare_sketched(self, sig16: np.ndarray, keys: np.ndarray) -> None:
        """:meth:`prepare` for a block sketched elsewhere (:meth:`sketch_rows`, in a worker
        process): its rows are then decided by :meth:`check_sketched`, in order."""
        if len(sig16):
            self._lookup([None] * len(sig16), sig16, keys.astype(np.uint64))

    def _lookup(self, texts: list[Any], sig16: np.ndarray, keys: np.ndarray) -> None:
        self._flush()
        found_q, found_r = [], []
        for j, table in enumerate(self._tables):
            q, r = table.get_many(keys[:, j])
            found_q.append(q)
            found_r.append(r)
        best_row, best_sim = self._best_earlier(np.concatenate(found_q), np.concatenate(found_r), sig16, len(texts))
        # rows of this block sharing a band key with another row of it: compared in check
        flat = (keys + (np.arange(self.bands, dtype=np.uint64) << _M64(32))).ravel()
        _, inverse, sizes = np.unique(flat, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(keys.shape)
        shared = sizes[inverse] > 1
        groups = [inverse[i][shared[i]].tolist() if any_shared else ()
                  for i, any_shared in enumerate(shared.any(axis=1).tolist())]
        self._block = [texts, sig16, keys, best_row, best_sim, groups, 0, {}]

    def _best_earlier(self, q: np.ndarray, r: np.ndarray, sig16: np.ndarray,
                      n: int) -> tuple[list[int], list[float]]:
        """For each of ``n`` rows, the stored row most similar to it among its candidates
        (query ``q[k]`` -> stored row ``r[k]``) that reaches the threshold: (rows, -1 for none; sims)."""
        best_row, best_sim = np.full(n, -1, dtype=np.int64), np.zeros(n)
        if len(q):
            by_chunk = np.argsort(r, kind="stable")
            q, r = q[by_chunk], r[by_chunk]
            chunk, off = np.divmod(r, self._chunk_rows)
            edges = np.searchsorted(chunk, np.arange(len(self._chunks) + 1)).tolist()
            stored = np.concatenate([self._chunks[c][off[a:b]] for c, (a, b) in enumerate(zip(edges, edges[1:]))])
            sims = np.count_nonzero(stored == sig16[q], axis=1) / self.num_perm
            ok = sims >= self.threshold
            q, r, sims = q[ok], r[ok], sims[ok]
            order = np.lexsort((r, -sims, q))  # per row: the most similar, then the earliest
            first = order[np.unique(q[order], return_index=True)[1]]
            best_row[q[first]], best_sim[q[first]] = r[first], sims[first]
        return best_row.tolist(), best_sim.tolist()

    def _stored(self, idx: int) -> np.ndarray:
        return self._chunks[idx // self._chunk_rows][idx % self._chunk_rows]

    def check(self, text: str | bytes, loc: Any) -> tuple[Any, float] | None:
        block = self._block
        if block is None or block[6] >= len(block[0]) or block[0][block[6]] is not text:
            self.prepare([text])
        return self._decide(text, loc)

    def check_sketched(self, exact_hash: int, loc: Any) -> tuple[Any, float] | None:
        """``check`` for the next row of the block given to :meth:`prepare_sketched`."""
        return self._decide(exact_hash, loc)

    def check_many(self, hashes: list[int], base: int, lines: list[int]) -> list[tuple[int, Any, float]]:
        """:meth:`check_sketched` for every row of the block (row i at location ``base |
        lines[i]``), in one call: [(i, location of the row it duplicates, similarity)]."""
        seen = self._exact._seen if self._exact is not None else None
        near, dups = self._near, []
        start = self._block[6]
        self._block[6] = start + len(hashes)
        for i, h in enumerate(hashes):
            loc = base | lines[i]
            if seen is not None:  # as ExactDeduper.check
                first = seen.get(h)
                if first is not None:
                    dups.append((i, first, 1.0))
                    continue
                seen[h] = loc
            hit = near(start + i, loc)
            if hit is not None:
                dups.append((i, hit[0], hit[1]))
        return dups

    def _decide(self, text: str | bytes | int, loc: Any) -> tuple[Any, float] | None:
        block = self._block
        i = block[6]
        block[6] = i + 1
        if self._exact is not None:
            first = self._exact.check(text, loc)
            if first is not None:
                return first, 1.0
        return self._near(i, loc)

    def _near(self, i: int, loc: Any) -> tuple[Any, float] | None:
        """Row ``i`` of the prepared block: the most similar accepted row, or None (it is kept)."""
        block = self._block
        sig16, members, groups = block[1][i], block[7], block[5][i]
        best_row, best_sim = block[3][i], block[4][i]  # among rows of earlier blocks
        if groups:  # rows of this block before it
            for idx in sorted({idx for g in groups for idx in members.get(g, ())}):
                sim = np.count_nonzero(self._stored(idx) == sig16) / self.num_perm
                if sim >= self.threshold and sim > best_sim:
                    best_row, best_sim = idx, sim
        if best_row >= 0:
            return self._locs[best_row], best_sim
        idx = len(self._locs)
        if idx % self._chunk_rows == 0:
            self._chunks.append(np.empty((self._chunk_rows, self.num_perm), dtype=np.uint16))
        self._chunks[-1][idx % self._chunk_rows] = sig16
        self._locs.append(loc)
        self._pending.append((i, idx))
        for g in groups:
            members.setdefault(g, []).append(idx)
        return None


def make(mode: str, threshold: float = 0.85, ngram: int = 3):
    if mode not in DEDUP_MODES:
        raise FactoryKitError(f"--dedup {mode!r}: choose one of {', '.join(DEDUP_MODES)}")
    if mode == "exact":
        return ExactDeduper()
    if mode == "near":
        return NearDeduper(threshold=threshold, ngram=ngram)
    return None
