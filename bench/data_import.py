"""Benchmark: `factory-kit data import` vs a plain `datasets` load + save of the same file.

    .venv/bin/python bench/data_import.py              # 1,000,000 rows, 3 repeats
    .venv/bin/python bench/data_import.py --rows 100000 --repeats 1

Generates N alpaca rows (Chinese clinical QA-like text, ~1% exact duplicates after
normalisation) into a temp folder, then runs, each in a fresh subprocess so that peak
memory (ru_maxrss) is the run's own, alternating between:

  factory-kit        import_source(..., dedup="exact"): decode, validate every field, NFC +
                     width + whitespace normalisation, length check, exact dedup,
                     provenance, quarantine, atomic write, registry merge
  datasets+to_json   datasets.load_dataset("json") (fresh cache) + Dataset.to_json
  datasets+save      datasets.load_dataset("json") (fresh cache) + Dataset.save_to_disk

Writes bench/results/data_import.json and prints medians (rows/s, peak memory MB: the
resident memory of the run's process and its worker processes together).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "data_import.json"

_TERMS = ["头痛", "发热", "恶寒", "咳嗽", "失眠", "心悸", "胃脘痛", "腹泻", "便秘", "眩晕", "乏力", "口干",
          "舌红少苔", "脉细数", "苔白腻", "脉滑", "气虚", "血瘀", "肝郁", "脾虚", "肾阳虚", "阴虚火旺"]
_HERBS = ["黄芪", "人参", "当归", "白术", "茯苓", "甘草", "柴胡", "川芎", "熟地黄", "白芍", "半夏", "陈皮",
          "桂枝", "麻黄", "附子", "干姜", "黄连", "黄芩", "金银花", "连翘"]
_FORMULAS = ["四君子汤", "六味地黄丸", "逍遥散", "归脾汤", "补中益气汤", "桂枝汤", "麻黄汤", "小柴胡汤"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        previous: list[str] = []
        for i in range(rows):
            if previous and rng.random() < 0.01:  # ~1% duplicates (some with different punctuation)
                line = rng.choice(previous)
                fh.write(line.replace("，", ",") if rng.random() < 0.5 else line)
                continue
            symptoms = "，".join(rng.sample(_TERMS, rng.randint(2, 6)))
            herbs = "、".join(rng.sample(_HERBS, rng.randint(3, 8)))
            row = {
                "instruction": f"患者{rng.randint(18, 80)}岁，{symptoms}。请辨证并给出治法方药。（病例{i}）",
                "input": "" if rng.random() < 0.7 else f"既往史：{rng.choice(_TERMS)}{rng.randint(1, 20)}年。",
                "output": (f"辨证：{rng.choice(_TERMS)}证。治法：{rng.choice(['益气健脾', '疏肝解郁', '滋阴降火', '温阳散寒'])}。"
                           f"方药：{rng.choice(_FORMULAS)}加减，{herbs}。" * rng.randint(1, 3)),
            }
            line = json.dumps(row, ensure_ascii=False) + "\n"
            if len(previous) < 1000:
                previous.append(line)
            elif rng.random() < 0.001:
                previous[rng.randrange(1000)] = line
            fh.write(line)


# --- workers (run in a subprocess; print one JSON line) -----------------------------------

def worker_factory_kit(src: str, work: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from factory_kit.data.importer import import_source

    t = time.perf_counter()
    r = import_source(src, "bench", project=Path(work), dedup="exact")
    return {"seconds": time.perf_counter() - t, "accepted": r.accepted, "quarantined": r.quarantined,
            "duplicates": r.duplicates}


def worker_datasets(src: str, work: str, save: str) -> dict:
    import datasets

    datasets.disable_progress_bars()
    t = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=src, split="train", cache_dir=os.path.join(work, "cache"))
    if save == "to_json":
        ds.to_json(os.path.join(work, "out.jsonl"), force_ascii=False)
    else:
        ds.save_to_disk(os.path.join(work, "out_ds"))
    return {"seconds": time.perf_counter() - t, "accepted": len(ds)}


def own_peak_mb() -> float:
    """This process's peak resident memory (VmHWM; not ru_maxrss, which Linux keeps across
    exec, so a child would report its parent's peak)."""
    try:
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeSampler:
    """Peak of (this process + its children) resident memory, sampled every 20 ms: the
    import's worker processes count too. Shared copy-on-write pages are counted once per
    process, so this over- rather than under-states."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.proc = psutil.Process()
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(0.02)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_worker(kind: str, src: Path, tmp: Path, script: str = __file__) -> dict:
    """Run ``script --worker KIND SRC WORK`` in a fresh process (its own peak memory) and read the
    JSON it prints last; other benches pass their own ``script``."""
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{kind}-"))
    proc = subprocess.run([sys.executable, script, "--worker", kind, str(src), str(work)],
                          capture_output=True, text=True)
    shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="folder for the generated file and outputs")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, src, work = args.worker
        with TreeSampler() as sampler:
            if kind == "factory-kit":
                result = worker_factory_kit(src, work)
            else:
                result = worker_datasets(src, work, kind.split("+", 1)[1])
        result["peak_main_mb"] = own_peak_mb()
        result["peak_rss_mb"] = max(sampler.peak, result["peak_main_mb"])  # all processes together
        print(json.dumps(result))
        return

    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="fk-bench-data-"))
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / f"alpaca_{args.rows}.jsonl"
    t = time.perf_counter()
    if not src.exists():
        generate(src, args.rows)
    size_mb = src.stat().st_size / 1e6
    print(f"input: {src} ({args.rows:,} rows, {size_mb:.0f} MB, generated in {time.perf_counter() - t:.1f} s)")

    load_before = os.getloadavg()[0]
    kinds = ["factory-kit", "datasets+to_json", "datasets+save"]
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for rep in range(args.repeats):
        for kind in kinds:
            r = run_worker(kind, src, tmp)
            r["rows_per_s"] = args.rows / r["seconds"]
            runs[kind].append(r)
            print(f"  [{rep + 1}/{args.repeats}] {kind:17s} {r['seconds']:7.2f} s  {r['rows_per_s']:>10,.0f} rows/s"
                  f"  peak {r['peak_rss_mb']:7.0f} MB")
    summary = {}
    for kind in kinds:
        summary[kind] = {
            "median_seconds": statistics.median(r["seconds"] for r in runs[kind]),
            "median_rows_per_s": statistics.median(r["rows_per_s"] for r in runs[kind]),
            "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs[kind]),
        }
    fk = summary["factory-kit"]
    ratios = {k: fk["median_rows_per_s"] / summary[k]["median_rows_per_s"] for k in kinds[1:]}
    result = {
        "rows": args.rows, "input_mb": round(size_mb, 1), "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_avg_before": load_before},
        "summary": summary,
        "factory_kit_speed_ratio": ratios,  # > 1: factory-kit imports more rows/s than that baseline
        "targets": {
            **{f"no_slower_than_{k}": r >= 1.0 for k, r in ratios.items()},
            "peak_under_1gb": fk["median_peak_rss_mb"] < 1024,
        },
        "factory_kit_counts": {k: runs["factory-kit"][0][k] for k in ("accepted", "quarantined", "duplicates")},
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\nmedians:")
    for kind in kinds:
        s = summary[kind]
        print(f"  {kind:17s} {s['median_rows_per_s']:>10,.0f} rows/s  {s['median_seconds']:7.2f} s"
              f"  peak {s['median_peak_rss_mb']:6.0f} MB")
    print("factory-kit speed vs " + ", ".join(f"{k}: {r:.2f}x" for k, r in ratios.items())
          + f"; targets: {result['targets']}")
    print(f"results: {out}")
    if not args.tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
