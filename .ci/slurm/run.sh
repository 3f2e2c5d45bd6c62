#!/usr/bin/env bash
# The SLURM tests alone: install slurm-wlm + munge (Debian), then run the `slurm` tests, which
# start slurmctld/slurmd/munged on localhost (.ci/slurm/start.sh) and stop them by PID.
# (.ci/run runs them inside the whole suite.)
#   .ci/slurm/run.sh [extra pytest args, e.g. -k requeue]
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}

if .ci/slurm/install.sh; then
    export SCPDIFF_REQUIRE_SLURM=1   # installed: a skipped cluster test is now a failure
else
    echo "slurm-ci: could not install SLURM here; the slurm tests will skip with the reason" >&2
fi
"$PY" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null \
    || "$PY" -m pip install -q 'snakemake-executor-plugin-slurm>=2.8,<3'
PATH="$(dirname "$PY"):$PATH" exec "$PY" -m pytest -q -m slurm tests/test_slurm_cluster.py "$@"
