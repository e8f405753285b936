"""Deterministic train/val/test splits: exact counts, seeded, optionally stratified.

The import first streams accepted rows to ``data/NAME.jsonl`` while counting rows per
stratum; :func:`assign` then draws, per stratum, a seeded shuffle of split labels with
exact sizes (largest-remainder rounding), and :func:`write_splits` streams the file once
more, routing row *i* of a stratum to its label. Only one byte per row is held in memory.
The same file, ratios, seed and stratify key always give byte-identical splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import orjson
import xxhash

from factory_kit.core import interrupts
from factory_kit.core.errors import FactoryKitError

SPLIT_NAMES = ("train", "val", "test")


def parse_ratios(spec: str | Iterable[float]) -> tuple[float, float, float]:
    """"0.8,0.1,0.1" or "80,10,10" or "0.9,0.1" -> (train, val, test). Fractions must add up
    to 1 and percentages to 100; anything else is refused, not rescaled."""
    if isinstance(spec, str):
        try:
            parts = [float(p) for p in spec.replace("/", ",").split(",") if p.strip()]
        except ValueError:
            raise FactoryKitError(f"--split {spec!r}: expected numbers like 0.8,0.1,0.1") from None
    else:
        parts = [float(p) for p in spec]
    if not 2 <= len(parts) <= 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise FactoryKitError(f"--split {spec!r}: give 2 or 3 non-negative parts (train,val[,test]), e.g. 0.8,0.1,0.1")
    shown = spec if isinstance(spec, str) else ",".join(f"{p:g}" for p in parts)
    total = sum(parts)
    if any(p > 1 for p in parts):  # percentages: 80,10,10
        if abs(total - 100) > 1e-4:
            raise FactoryKitError(f"--split {shown}: the percentages add up to {total:.6g}; they must add up to "
                                  "100 (e.g. 90,10 or 80,10,10)")
    elif abs(total - 1) > 1e-6:  # never rescaled: 0.5,0.6 is a typo, not 45%/55%
        raise FactoryKitError(f"--split {shown}: the fractions add up to {total:.6g}; they must add up to 1 "
                              "(e.g. 0.9,0.1 or 0.8,0.1,0.1)")
    while len(parts) < 3:
        parts.append(0.0)
    if parts[0] <= 0:
        raise FactoryKitError(f"--split {spec!r}: the train part must be > 0")
    return parts[0] / total, parts[1] / total, parts[2] / total


def sizes(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Exact split sizes summing to ``n`` (largest remainder)."""
    raw = [n * r for r in ratios]
    out = [int(x) for x in raw]
    rest = n - sum(out)
    order = sorted(range(3), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[:rest]:
        out[i] += 1
    return out


def assign(counts: dict[str, int], ratios: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Per stratum, a uint8 array of split labels (0 train, 1 val, 2 test) in row order."""
    labels: dict[str, np.ndarray] = {}
    for stratum, n in counts.items():
        k = sizes(n, ratios)
        arr = np.repeat(np.arange(3, dtype=np.uint8), k)
        rng = np.random.default_rng([seed & 0xFFFFFFFF, xxhash.xxh32_intdigest(stratum.encode())])
        rng.shuffle(arr)
        labels[stratum] = arr
    return labels


def stratum_of(row: dict[str, Any], key: str | None) -> str:
    if not key:
        return ""
    value = row.get(key)
    return "" if value is None else str(value)


def write_splits(data_file: Path, outputs: list[Path | None], labels: dict[str, np.ndarray],
                 key: str | None, on_row: Callable[[int, int], None] | None = None) -> list[int]:
    """Stream ``data_file`` into the split files (``outputs[i]`` None = split unused)."""
    seen = {s: 0 for s in labels}
    written = [0, 0, 0]
    handles = [open(p, "wb") if p is not None else None for p in outputs]
    try:
        with open(data_file, "rb") as fh:
            for i, line in enumerate(fh):
                stratum = stratum_of(orjson.loads(line), key) if key else ""
                pos = seen[stratum]
                seen[stratum] = pos + 1
                label = int(labels[stratum][pos])
                out = handles[label]
                if out is not None:
                    out.write(line)
                    written[label] += 1
                if on_row is not None:
                    on_row(i, label)
                if i == 4096:
                    interrupts.pause_point("split")  # test only
    finally:
        for h in handles:
            if h is not None:
                h.close()
    return written
