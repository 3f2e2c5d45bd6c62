"""The test suite's own scheduling under pytest-xdist, as `make test` runs it (tests/conftest.py):
the smoke study is built once per session whichever workers ask for it, by the first test, while
the other worker runs plain tests; every user of it sees that one build; the SLURM cluster tests
run on one worker (their module fixture starts this machine's daemons). Checked by running pytest
with xdist on a small suite that uses the repository's hook and `shared_once` with a stand-in build
that records where and when it ran."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = Path(__file__).resolve().with_name("conftest.py")


def test_smoke_study_built_once_while_the_other_worker_runs_plain_tests(tmp_path):
    suite, records = tmp_path / "suite", tmp_path / "records"
    suite.mkdir()
    records.mkdir()
    (suite / "conftest.py").write_text(textwrap.dedent(f"""
        import importlib.util, json, os, pathlib, time, pytest
        spec = importlib.util.spec_from_file_location("repo_conftest", {str(CONFTEST)!r})
        repo = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(repo)
        pytest_collection_modifyitems = repo.pytest_collection_modifyitems
        RECORDS = pathlib.Path({str(records)!r})

        def record(kind, **fields):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
            now = time.time()
            (RECORDS / f"{{kind}}-{{time.monotonic_ns()}}.json").write_text(json.dumps({{"worker": worker, "t": now, **fields}}))

        def build(workdir):
            start = time.time()
            workdir.mkdir(parents=True)
            time.sleep(2.0)  # long enough for the other worker to run plain tests meanwhile
            record("build", dir=str(workdir), start=start)
            (workdir / ".complete").touch()

        @pytest.fixture(scope="session")
        def smoke_run(tmp_path_factory):
            return repo.shared_once(tmp_path_factory, "smoke", build)

        @pytest.fixture
        def smoke_copy(smoke_run):  # a fixture that uses it makes its tests users too
            return smoke_run
    """))
    plain = "\n".join(f"def test_plain_{i}():\n    time.sleep(0.1)\n    record('plain')\n" for i in range(12))
    uses = "def test_uses_smoke_{0}({1}):\n    record('smoke', dir=str({1}))\n"
    # the smoke users sit at the end of their files: the hook, not the files, puts one first
    (suite / "test_a.py").write_text("import time\nfrom conftest import record\n" + plain
                                     + uses.format(0, "smoke_run") + uses.format(1, "smoke_copy"))
    (suite / "test_b.py").write_text("import time\nfrom conftest import record\n" + plain + uses.format(2, "smoke_run"))
    # several, so that without the group they would spread over both workers
    cluster = "".join(f"def test_cluster_{i}():\n    time.sleep(0.2)\n    record('slurm')\n" for i in range(6))
    (suite / "test_slurm_cluster.py").write_text(
        "import time\nfrom conftest import record\n" + cluster
        + "def test_cluster_copies_the_smoke_run(smoke_run):\n    record('slurm', dir=str(smoke_run))\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                          "loadgroup", "--no-loadscope-reorder", str(suite)],
                         cwd=suite, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "34 passed" in res.stdout, res.stdout
    runs: dict[str, list[dict]] = {}
    for path in sorted(records.iterdir()):
        runs.setdefault(path.name.split("-")[0], []).append(json.loads(path.read_text()))
    assert len(runs["build"]) == 1, runs["build"]
    build = runs["build"][0]
    assert build["worker"].startswith("gw")
    # every user saw the one build, whichever worker it ran on
    assert len(runs["smoke"]) == 3
    assert {r["dir"] for r in runs["smoke"] + runs["slurm"] if "dir" in r} == {build["dir"]}
    assert len(runs["slurm"]) == 7 and len({r["worker"] for r in runs["slurm"]}) == 1
    # while one worker built the study, the other ran plain tests (it did not wait for the build)
    other = [r for r in runs["plain"] if r["worker"] != build["worker"] and build["start"] < r["t"] < build["t"]]
    assert len(other) >= 5, (build, runs["plain"])
