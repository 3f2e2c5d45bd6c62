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
import re
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


def rule_seconds(log: str) -> dict[str, tuple[int, int]]:
    """``{rule: (jobs, summed wall seconds)}`` from Snakemake's console log (its timestamp lines,
    ``rule NAME:`` / ``jobid: N`` when a job starts and ``Finished jobid: N`` when it ends)."""
    stamp = None
    started, pending, sums = {}, None, {}
    for line in log.splitlines():
        m = re.match(r"^\[(\w{3} \w{3}\s+\d+ [\d:]+ \d{4})\]$", line)
        if m:
            stamp = dt.datetime.strptime(re.sub(r"\s+", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and pending:
            started[m.group(1)], pending = stamp, None
            continue
        m = re.match(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", line)
        start = started.pop(m.group(1), None) if m else None
        if start is not None and stamp is not None:
            jobs, seconds = sums.get(m.group(2), (0, 0))
            sums[m.group(2)] = (jobs + 1, seconds + int((stamp - start).total_seconds()))
    return dict(sorted(sums.items(), key=lambda kv: -kv[1][1]))


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
        per_rule = rule_seconds(res.stdout + res.stderr)
        served = 0
        log = tree / "work" / "logs" / "forkserver.log"
        if log.exists():
            served = sum(line.startswith("job ") for line in log.read_text().splitlines())
    return {"benchmark": benchmark, "forkserver": forkserver, "cores": cores, "wall_s": round(wall, 1),
            "jobs": jobs, "forked_jobs": served, "calibration_before_s": before, "calibration_after_s": after,
            # where the time goes: rule=jobs/seconds (summed job wall times), longest first
            "rule_seconds": " ".join(f"{rule}={n}/{sec}" for rule, (n, sec) in per_rule.items())}


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
    earlier = []
    if out.exists():
        with out.open(newline="") as f:
            earlier = list(csv.DictReader(f))
    fields = list(rows[0]) + [k for row in earlier for k in row if k not in rows[0]]
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", newline="") as f:  # rewritten whole: rows of earlier versions lack new columns
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(fields)), restval="")
        writer.writeheader()
        writer.writerows(earlier + rows)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
