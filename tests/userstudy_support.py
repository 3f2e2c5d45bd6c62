"""Shared by the user-study tests: a study built from a toy validation split, and the real server
started on a free loopback port (``scpdiff user-study serve --port 0``) as a child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from scpdiff.cli import main

REPO = Path(__file__).resolve().parents[1]
SMOKE_MU = "0.85"


def make_study(root: Path, groups: int = 4, seed: int = 3, num_val: int = 6) -> tuple[Path, dict]:
    """A toy validation split of ``num_val`` maps; two of our settings in shard folders (as the
    workflow writes them) and one foreign method's folder; ``user-study build`` over them.

    Returns (study folder, {method: constant pixel value of its images}).
    """
    from scpdiff.datasets import open_dataset
    from scpdiff.datasets.toy import write_toy_dataset

    data = root / "data"
    write_toy_dataset(data, num_train=1, num_val=num_val, resolution=(64, 128), seed=0)
    bench = root / "bench.yaml"
    bench.write_text(f"extends: {REPO / 'benchmarks' / 'smoke.yaml'}\ndataset: {{root: {data}}}\n")
    ds = open_dataset("toy", root=str(data), split="val", resolution=(64, 128))
    names = [ds[i][2] for i in range(num_val)]
    work = root / "work"
    values = {"OASIS": 30, "normal:1": 120, "SCP-Diff": 220}
    folders = {
        "normal:1": work / "smoke" / "samples" / "normal" / "mu1" / "fid",
        "SCP-Diff": work / "smoke" / "samples" / "joint" / f"mu{SMOKE_MU}" / "fid",
        "OASIS": root / "oasis",
    }
    for method, folder in folders.items():
        for i, name in enumerate(names):
            # our settings: two shard folders, "{name}.png"; OASIS: one folder, "{name}_00.png"
            d = folder / f"{i % 2:04d}" if method != "OASIS" else folder
            d.mkdir(parents=True, exist_ok=True)
            file = d / (f"{name}_00.png" if method == "OASIS" else f"{name}.png")
            Image.fromarray(np.full((64, 128, 3), values[method], np.uint8)).save(file)
    study = root / "study"
    rc = main(["user-study", "build", "--benchmark", str(bench), "--images", f"OASIS={folders['OASIS']}",
               "--methods", "normal:1", f"SCP-Diff=joint:{SMOKE_MU}", "--work-dir", str(work),
               "--groups", str(groups), "--seed", str(seed), "--out", str(study)])
    assert rc == 0
    return study, values


class Server:
    """``scpdiff user-study serve STUDY --port 0`` in a child process; ``url`` from its first line."""

    def __init__(self, study: Path):
        env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        # the server's log goes to a file: an unread pipe could fill and stall the server
        self.log = open(study.parent / f"server-{os.getpid()}-{id(self)}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scpdiff", "user-study", "serve", str(study), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        if "serving on " not in line:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.log.seek(0)
            raise AssertionError(f"server did not start: {line}{self.log.read()}")
        self.url = line.split("serving on ")[1].split()[0].rstrip("/")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when a machine dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.stdout.close()
        self.log.close()


def http(method: str, url: str, body=None, raw: bytes | None = None, content_type: str = "application/json"):
    """(status, parsed JSON or text) of one request; 4xx/5xx are returned, not raised."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, text, ctype = res.status, res.read(), res.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, text, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(text)
    return status, text.decode(errors="replace") if "text" in ctype else text


def token_of(link: str) -> str:
    return link.rsplit("/p/", 1)[1]
