#!/usr/bin/env bash
# Install SLURM (slurmctld, slurmd, client commands) and munge from the Debian archive.
# Idempotent: does nothing when the binaries are already there. Needs root and the Debian mirror.
set -euo pipefail

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    echo "slurm-ci: slurm-wlm and munge already installed ($(slurmctld -V))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm-ci: need root to apt-get install slurm-wlm munge" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends slurm-wlm munge
echo "slurm-ci: installed $(slurmctld -V)"
