"""tools/speed/dag.py: the per-rule times it reads from Snakemake's console log (README "where the
time goes"), against hand-computed sums and against Snakemake's own job table."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import load_tool


# Two rules' jobs overlapping in time, a localrule, and a job that never finishes (it failed).
LOG = """\
Job stats:
job        count
-------  -------
train          1
score          2
table          1
total          4

[Thu Dec  3 15:44:33 2026]
localrule train:
    output: work/model.pt
    jobid: 4
    threads: 2
Select jobs to execute...

[Thu Dec  3 15:45:03 2026]
rule score:
    input: work/model.pt
    jobid: 7
    wildcards: prior=joint

[Thu Dec  3 15:45:13 2026]
Finished jobid: 4 (Rule: train)
1 of 4 steps (25%) done

[Thu Dec  3 15:45:14 2026]
rule score:
    jobid: 8
    wildcards: prior=normal

[Thu Dec  3 15:46:03 2026]
Finished jobid: 7 (Rule: score)
2 of 4 steps (50%) done

[Thu Dec  3 15:46:04 2026]
localrule table:
    jobid: 9
[Thu Dec  3 15:46:09 2026]
Error in rule table:
    jobid: 9
[Thu Dec  3 15:46:24 2026]
Finished jobid: 8 (Rule: score)
"""


@pytest.fixture(scope="module")
def dag():
    return load_tool("tools/speed/dag.py", "speed_dag")


def test_rule_seconds_sums_each_rules_job_walls(dag):
    # train 15:44:33 -> 15:45:13 = 40 s; score 15:45:03 -> 15:46:03 = 60 s and 15:45:14 -> 15:46:24 = 70 s;
    # table never finished: not counted.
    assert dag.rule_seconds(LOG) == {"score": (2, 130), "train": (1, 40)}
    assert list(dag.rule_seconds(LOG)) == ["score", "train"]  # longest first


def _job_table(log: str) -> dict[str, int]:
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _stamps(log: str) -> list[dt.datetime]:
    return [dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            for m in re.finditer(r"^\[(\w{3} \w{3}\s+\d+ [\d:]+ \d{4})\]$", log, re.M)]


def test_rule_seconds_of_the_smoke_run_counts_every_job_of_snakemakes_table(dag, smoke_run):
    log = (smoke_run / "snakemake.log").read_text()
    per_rule = dag.rule_seconds(log)
    assert {rule: jobs for rule, (jobs, _) in per_rule.items()} == _job_table(log)
    stamps = _stamps(log)
    span = (max(stamps) - min(stamps)).total_seconds()
    for rule, (jobs, seconds) in per_rule.items():
        assert 0 <= seconds <= jobs * span, rule
    assert sum(seconds for _, seconds in per_rule.values()) > 0
