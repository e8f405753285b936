"""Benchmark: `factory-kit data import --dedup near` (numpy MinHash + compact band tables) vs the
previous datasketch MinHash/MinHashLSH implementation, beside `--dedup exact`, in one run.

    .venv/bin/python bench/dedup_bench.py                       # 200k side by side + new on 1M
    .venv/bin/python bench/dedup_bench.py --rows 20000 --big 0 --repeats 1

Generates short Chinese clinical rows (deterministic, seeded) with planted duplicates: ~1% exact
copies, ~4% near copies (1-3 characters changed, or punctuation/digits rewritten) of an earlier
row. Each import runs in a fresh subprocess (peak memory = its own VmHWM, plus any worker
processes sampled every 20 ms). ``near-datasketch`` is the import with the previous deduper (kept
below as ``LegacyNearDeduper``) patched in, so everything else is the same code; it runs without
worker processes, as near dedup did before (the new one's workers sketch the rows).
Writes bench/results/dedup_bench.json and prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_import import TreeSampler, own_peak_mb, run_worker  # noqa: E402  (same peak-memory method and launcher)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "dedup_bench.json"

_SYMPTOMS = ["头痛", "发热", "恶寒", "咳嗽", "咳痰", "失眠", "心悸", "胸闷", "胃脘痛", "腹胀", "腹泻", "便秘", "眩晕",
             "乏力", "口干", "口苦", "纳差", "盗汗", "自汗", "腰膝酸软", "耳鸣", "尿频", "水肿", "关节疼痛"]
_SIGNS = ["舌红少苔", "舌淡苔白", "苔白腻", "苔黄腻", "舌暗有瘀斑", "舌淡胖有齿痕", "脉细数", "脉滑", "脉弦",
          "脉沉细", "脉浮紧", "脉缓弱"]
_DX = ["脾气虚证", "肝郁气滞证", "阴虚火旺证", "痰湿蕴肺证", "肾阳虚证", "气滞血瘀证", "风寒束表证", "心脾两虚证"]
_RX = ["四君子汤", "六味地黄丸", "逍遥散", "归脾汤", "补中益气汤", "桂枝汤", "麻黄汤", "小柴胡汤", "二陈汤", "血府逐瘀汤"]
_ALT = "的了是在有和与及或其此该为以于对从向被把给让使得着过"


def _row(rng: random.Random) -> dict:
    sym = "，".join(rng.sample(_SYMPTOMS, rng.randint(2, 5)))
    sex = rng.choice("男女")
    return {"instruction": f"患者{sex}，{rng.randint(18, 85)}岁，{sym}{rng.randint(2, 30)}天，"
                           f"{rng.choice(_SIGNS)}，{rng.choice(_SIGNS)}。应如何辨证论治？",
            "output": f"辨为{rng.choice(_DX)}，方用{rng.choice(_RX)}加减。"}


def _perturb(row: dict, rng: random.Random) -> dict:
    """A near copy: 1-3 characters replaced, or the punctuation / a number rewritten."""
    out = dict(row)
    text = list(out["instruction"])
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            text[rng.randrange(len(text))] = rng.choice(_ALT)
    else:
        text = list("".join(text).replace("，", "、", 1).replace("。", "；"))
    out["instruction"] = "".join(text)
    return out


def generate(path: Path, rows: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    recent: list[dict] = []
    planted = {"exact": 0, "near": 0}
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            roll = rng.random()
            if recent and roll < 0.01:
                row = rng.choice(recent)
                planted["exact"] += 1
            elif recent and roll < 0.05:
                row = _perturb(rng.choice(recent), rng)
                planted["near"] += 1
            else:
                row = _row(rng)
                if len(recent) < 5000:
                    recent.append(row)
                else:
                    recent[rng.randrange(5000)] = row
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return planted


class LegacyNearDeduper:
    """The previous implementation (datasketch MinHash + MinHashLSH), verbatim in behaviour."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, ngram: int = 3) -> None:
        import numpy as np
        import xxhash
        from datasketch import MinHash, MinHashLSH

        from factory_kit.data.dedup import ExactDeduper

        self._np, self._h = np, (lambda d: xxhash.xxh32_intdigest(d))
        self._MinHash, self.threshold, self.num_perm, self.ngram = MinHash, threshold, num_perm, ngram
        self._template = MinHash(num_perm=num_perm, hashfunc=self._h)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._chunks: list = []
        self._chunk_rows = 16384
        self._locs: list = []
        self._exact = ExactDeduper()

    def _sketch(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogatepass")
        n = self.ngram
        shingles = {text} if len(text) <= n else {text[i:i + n] for i in range(len(text) - n + 1)}
        mh = self._MinHash(num_perm=self.num_perm, hashfunc=self._h,
                           permutations=self._template.permutations, scheme=self._template.scheme)
        mh.update_batch([s.encode("utf-8", "surrogatepass") for s in shingles])
        return mh

    def check(self, text, loc):
        first = self._exact.check(text, loc)
        if first is not None:
            return first, 1.0
        mh = self._sketch(text)
        best = None
        for idx in self._lsh.query(mh):
            stored = self._chunks[idx // self._chunk_rows][idx % self._chunk_rows]
            sim = float(self._np.mean(stored == mh.hashvalues))
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (self._locs[idx], sim)
        if best is not None:
            return best
        idx = len(self._locs)
        if idx % self._chunk_rows == 0:
            self._chunks.append(self._np.empty((self._chunk_rows, self.num_perm), dtype=mh.hashvalues.dtype))
        self._chunks[-1][idx % self._chunk_rows] = mh.hashvalues
        self._locs.append(loc)
        self._lsh.insert(idx, mh)
        return None


def worker(kind: str, src: str, work: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from factory_kit.data import dedup
    from factory_kit.data.importer import import_source

    if kind == "near-datasketch":
        dedup.make = lambda mode, threshold=0.85, ngram=3: LegacyNearDeduper(threshold, ngram=ngram)
    t = time.perf_counter()
    # the datasketch deduper sketches in the main process, as before (no worker processes)
    r = import_source(src, "bench", project=Path(work), dedup="exact" if kind == "exact" else "near",
                      workers=0 if kind == "near-datasketch" else None)
    return {"seconds": time.perf_counter() - t, "accepted": r.accepted, "duplicates": r.duplicates}


def _series(label: str, kinds: list[str], src: Path, rows: int, repeats: int, tmp: Path) -> dict:
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for rep in range(repeats):
        for kind in kinds:
            r = run_worker(kind, src, tmp, script=__file__)
            r["rows_per_s"] = rows / r["seconds"]
            runs[kind].append(r)
            print(f"  {label} [{rep + 1}/{repeats}] {kind:16s} {r['seconds']:7.2f} s {r['rows_per_s']:>9,.0f} rows/s "
                  f"peak {r['peak_rss_mb']:6.0f} MB  dups {r['duplicates']:,}", flush=True)
    return {k: {"median_seconds": statistics.median(r["seconds"] for r in v),
                "median_rows_per_s": statistics.median(r["rows_per_s"] for r in v),
                "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in v),
                "duplicates": v[0]["duplicates"], "runs": v} for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="side-by-side size (old vs new vs exact)")
    ap.add_argument("--big", type=int, default=1_000_000, help="new near + exact only (0: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-repeats", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, src, work = args.worker
        with TreeSampler() as sampler:
            result = worker(kind, src, work)
        result["peak_main_mb"] = own_peak_mb()
        result["peak_rss_mb"] = max(sampler.peak, result["peak_main_mb"])
        print(json.dumps(result))
        return
    tmp = Path(tempfile.mkdtemp(prefix="fk-bench-dedup-"))
    load_before = os.getloadavg()[0]
    out: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "platform": platform.platform(), "load_avg_before": load_before,
                             "note": "2 cores shared with other agents' processes while measuring"}}
    for label, rows, kinds, reps in [("side_by_side", args.rows, ["near-datasketch", "near", "exact"], args.repeats),
                                     ("big", args.big, ["near", "exact"], args.big_repeats)]:
        if not rows:
            continue
        src = tmp / f"rows_{rows}.jsonl"
        planted = generate(src, rows)
        print(f"{label}: {rows:,} rows, {src.stat().st_size / 1e6:.0f} MB, planted {planted}", flush=True)
        out[label] = {"rows": rows, "planted": planted, "repeats": reps,
                      "results": _series(label, kinds, src, rows, reps, tmp)}
        src.unlink()
    shutil.rmtree(tmp, ignore_errors=True)
    sbs = out.get("side_by_side", {}).get("results", {})
    if "near-datasketch" in sbs:
        old, new = sbs["near-datasketch"], sbs["near"]
        out["near_speedup_vs_datasketch"] = new["median_rows_per_s"] / old["median_rows_per_s"]
        out["near_memory_ratio_vs_datasketch"] = new["median_peak_rss_mb"] / old["median_peak_rss_mb"]
    big = out.get("big", {}).get("results", {}).get("near")
    if big and "near-datasketch" in sbs:
        out["targets"] = {"1M_peak_under_1gb": big["median_peak_rss_mb"] < 1024,
                          "1M_rows_per_s_at_least_5x_datasketch":
                              big["median_rows_per_s"] >= 5 * sbs["near-datasketch"]["median_rows_per_s"]}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in out.items() if k in ("near_speedup_vs_datasketch",
                      "near_memory_ratio_vs_datasketch", "targets")}, indent=2))


if __name__ == "__main__":
    main()
