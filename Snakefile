"""The SCP-Diff study as one Snakemake workflow (paper sections 4-5).

    snakemake --cores all                                   # the toy benchmark (config/config.yaml)
    snakemake --cores all --config 'benchmarks=[smoke]'     # any benchmark(s) under benchmarks/
    snakemake --cores all --profile slurm                   # on a SLURM cluster (scpdiff install-profiles)
    snakemake results/table1.tex                            # Table 1 over every configured benchmark
    snakemake results/toy/table1.tex                        # any single target
    snakemake --report report.html                          # tables and figures as one HTML page

Stages, each a thin rule around one ``scpdiff`` command (workflow/rules/):
prepare data -> (toy: train VAE, base, segmenter) -> fine-tune ControlNet -> encode reference
latents in shards -> fit each prior per shard -> merge -> generate per (prior, mu) in shards ->
FID reference statistics -> score each setting -> tables and plots, per benchmark and over all.
Table 4, the user study: `snakemake user_study` builds the study folders; their table joins `all`
once answers exist. Rule files listed under the config's `extra_rules` are included after the
shared definitions (e.g. a prior variant written as a rule; docs/workflow.md).
"""

from snakemake.utils import min_version

min_version("9.0")

import os as _os
from scpdiff.utils.workflow_watch import WORKFLOW_PID_ENV, workflow_tag

# every job inherits this and stops if this Snakemake process dies (kill -9): see
# scpdiff.utils.workflow_watch and docs/workflow.md "Killed runs"
_os.environ[WORKFLOW_PID_ENV] = workflow_tag()


# A local run's jobs are forks of one warm process that has imported torch, diffusers and the
# metric libraries (scpdiff.utils.forkserver; docs/workflow.md "Job start-up"). A cluster executor,
# conda/container deployment or `forkserver: false` in the config: every job starts its own Python.
onstart:
    if use_forkserver(workflow, config):
        _os.environ[FORKSERVER_ENV] = start_forkserver(FORKSERVER_DIR, f"{WORK}/logs/forkserver.log")


onsuccess:
    stop_forkserver(FORKSERVER_DIR)


onerror:
    stop_forkserver(FORKSERVER_DIR)


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/user_study_common.smk"
include: "workflow/rules/ablation_common.smk"


# The user's own rules (the config's `extra_rules`), e.g. a prior variant written as a rule.
for _rule_file in EXTRA_RULES:

    include: _rule_file


check_priors()


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/user_study.smk"
include: "workflow/rules/ablation.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        all_targets(),
        user_study_targets(),
    default_target: True
