#!/usr/bin/env bash
# Install SLURM (slurmctld, slurmd, client commands) and munge from the Debian archive.
# Idempotent: does nothing when the binaries are already there. Needs root and the Debian mirror.
set -euo pipefail
"$(dirname "$0")/../apt-install.sh" slurm-ci "slurmctld slurmd sbatch munged" slurm-wlm munge
echo "slurm-ci: $(slurmctld -V)"
