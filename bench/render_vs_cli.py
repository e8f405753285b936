"""Benchmark: cold `factory-kit render` vs cold `llamafactory-cli version`, in the same run.

Each is a fresh process (cold imports), repeated N times; medians and the ratio go to
bench/results/render_vs_cli.json. Target: render >= 10x faster and under 0.5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
N = int(os.environ.get("BENCH_N", "7"))


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "DISABLE_VERSION_CHECK": "1"})
    return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import fake_registry  # the same tiny registry the tests use

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        shutil.copytree(ROOT / "recipes", project / "recipes")
        fake_registry(project)
        render = [str(BIN / "factory-kit"), "render", "recipes/tcm-lora.yaml"]
        version = [str(BIN / "llamafactory-cli"), "version"]
        timed(render, project)  # warm the OS file cache once for both; imports stay cold per process
        timed(version, project)
        render_s = [timed(render, project) for _ in range(N)]
        version_s = [timed(version, project) for _ in range(N)]
    result = {
        "runs": N,
        "render_median_s": round(statistics.median(render_s), 3),
        "llamafactory_version_median_s": round(statistics.median(version_s), 3),
        "ratio": round(statistics.median(version_s) / statistics.median(render_s), 1),
        "render_s": [round(x, 3) for x in render_s],
        "llamafactory_version_s": [round(x, 3) for x in version_s],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    out = ROOT / "bench" / "results" / "render_vs_cli.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = result["ratio"] >= 10 and result["render_median_s"] < 0.5
    print(f"render {result['render_median_s']} s vs llamafactory-cli version "
          f"{result['llamafactory_version_median_s']} s: {result['ratio']}x ({'meets' if ok else 'MISSES'} target)")


if __name__ == "__main__":
    main()
