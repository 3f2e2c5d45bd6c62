"""Whole-DAG wall time of a benchmark from a clean copy of this checkout, with and without the fork
server (docs/workflow.md "Job start-up"), beside a host-speed calibration.

Goal (issue 13): the toy DAG in at most 15 minutes and the smoke DAG in at most 5 on a 2-core CPU,
the venv aside. Shared 2-core hosts drift by a third from hour to hour, so each run is bracketed by
a fixed pure-Python loop (10^7 additions): compare runs whose calibration agrees.

    python tools/speed/dag.py --benchmark smoke --out results/speed/dag-smoke.csv
    python tools/speed/dag.py --benchmark toy --forkserver true --out results/speed/dag-toy.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CALIBRATION = "import time\nt = time.perf_counter(); s = 0\nfor i in range(10**7): s += i\nprint(time.perf_counter() - t)"


def calibrate() -> float:
    """Seconds for the fixed loop (lower: a faster host that moment)."""
    out = subprocess.run([sys.executable, "-c", CALIBRATION], capture_output=True, text=True, check=True)
    return round(float(out.stdout), 3)


def clean_copy(dest: Path) -> None:
    """The committed tree at HEAD (no work/, results/ or caches), as a fresh clone would have it."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_dag(benchmark: str, forkserver: bool, cores: int) -> dict:
    """One ``snakemake --cores CORES`` of BENCHMARK in a fresh clone (metric weights prepared by the
    DAG's own `weights` job, as on a fresh checkout)."""
    with tempfile.TemporaryDirectory(prefix="scpdiff-dag-") as tmp:
        tree = Path(tmp) / "tree"
        clean_copy(tree)
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        cmd = [str(Path(sys.executable).with_name("snakemake")), "--cores", str(cores), "--config",
               f"benchmarks=[{benchmark}]", f"forkserver={forkserver}"]
        before = calibrate()
        t0 = time.perf_counter()
        res = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = calibrate()
        if res.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed in {tree}:\n{(res.stdout + res.stderr)[-3000:]}")
        jobs = (res.stdout + res.stderr).count("Finished jobid")
        served = 0
        log = tree / "work" / "logs" / "forkserver.log"
        if log.exists():
            served = sum(line.startswith("job ") for line in log.read_text().splitlines())
    return {"benchmark": benchmark, "forkserver": forkserver, "cores": cores, "wall_s": round(wall, 1),
            "jobs": jobs, "forked_jobs": served, "calibration_before_s": before, "calibration_after_s": after}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="smoke")
    ap.add_argument("--forkserver", choices=["true", "false", "both"], default="both")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", default="results/speed/dag.csv")
    args = ap.parse_args()
    modes = {"true": [True], "false": [False], "both": [False, True]}[args.forkserver]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    rows = []
    for mode in modes:
        row = run_dag(args.benchmark, mode, args.cores)
        row.update(commit=commit, date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   cpu=cpu_model(), python=platform.python_version())
        print(row, flush=True)
        rows.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
