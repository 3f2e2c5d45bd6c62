"""What a benchmark asks the workflow to run: its generation settings and shard counts.

One enumeration for the ``Snakefile`` (``workflow/rules/common.smk`` wraps these per ``{bench}``)
and for ``scpdiff plan`` (:mod:`scpdiff.planning`), so the plan counts exactly the jobs of the DAG.
Every function takes the resolved benchmark (:class:`~scpdiff.config.benchmark.Benchmark`, a dict).
"""

from __future__ import annotations

import math
from typing import Mapping


def fmt_mu(mu) -> str:
    """mu as it appears in paths and wildcards (``0.85``, ``1``)."""
    return f"{float(mu):g}"


def _unique(items):
    return list(dict.fromkeys(items))


def fid_settings(bench: Mapping) -> list[tuple[str, str]]:
    """(prior, mu) pairs to generate and score for FID/mIoU: Table 1 (mu.table), Fig. 8 (mu.grid)
    and Fig. 3 (the oracle prior over mu.oracle_grid, against the normal prior at mu = 1)."""
    mus = _unique([fmt_mu(m) for m in [bench["mu"]["table"], *bench["mu"]["grid"]]])
    out = [(p, m) for p in bench["priors"] for m in mus]
    if bench["mu"].get("oracle_grid"):
        out += [("oracle", fmt_mu(m)) for m in bench["mu"]["oracle_grid"]]
        out.append(("normal", "1"))
    return _unique(out)


# the prior whose start rule is the protocol's normal_prior_start (scpdiff.sampling.schedule)
NORMAL_PRIOR = "normal"
# the mu label of the one normal-prior setting under ``normal_prior_start: controlnet`` (D = 999)
CONTROLNET_MU = "1"


def sample_mu(bench: Mapping, prior: str, mu) -> str:
    """The mu whose images a (prior, mu) setting reads. Under the protocol's ``normal_prior_start:
    controlnet`` the normal prior is plain ControlNet inference whatever mu (pure noise at the grid's
    top step, noise_prior_inference.py:126-128): one setting, generated once at mu = 1 (D = 999) and
    read by every row that shows the normal prior (Table 1 at mu.table, a flat line in Fig. 8)."""
    proto = bench.get("protocol") or {}
    if prior == NORMAL_PRIOR and proto.get("normal_prior_start", "controlnet") == "controlnet":
        return CONTROLNET_MU
    return fmt_mu(mu)


def generated_settings(bench: Mapping, pairs) -> list[tuple]:
    """The (prior, mu, ...) settings ``pairs`` make the workflow generate and score: each pair with
    its :func:`sample_mu`, once (rows that share images share one job)."""
    return _unique([(p, sample_mu(bench, p, m), *rest) for p, m, *rest in pairs])


def table_priors(bench: Mapping) -> list[str]:
    """The priors of Tables 1-3 (the oracle only draws Fig. 3)."""
    return [p for p in bench["priors"] if p != "oracle"]


def diversity_settings(bench: Mapping) -> list[tuple[str, str]]:
    """(prior, mu) pairs for Table 3: every compared prior at mu.table."""
    return [(p, fmt_mu(bench["mu"]["table"])) for p in table_priors(bench)]


def num_reference_shards(bench: Mapping) -> int:
    counts = bench["counts"]
    return math.ceil(counts["reference"] / counts["shard_size"])


def num_val_latent_shards(bench: Mapping) -> int:
    """The oracle prior (Fig. 3) needs the real latents of the validation label maps. Their number
    is known before the data exists only for the toy datasets; a real split is encoded in one job
    (a few thousand images at most)."""
    num_val = bench["dataset"].get("num_val")
    return math.ceil(num_val / bench["counts"]["shard_size"]) if num_val else 1


def table_settings(bench: Mapping) -> list[tuple[str, str]]:
    """(prior, mu) pairs of Table 1: every compared prior at mu.table."""
    return [(p, fmt_mu(bench["mu"]["table"])) for p in table_priors(bench)]


# counts that change how many images a job makes or segments, not what an image is
COST_KNOBS = ("sweep_fid_samples", "segment_per_map")


def sweep_fid_samples(bench: Mapping) -> int:
    """Images per mu-sweep (Fig. 8) and oracle-curve (Fig. 3) point: ``counts.sweep_fid_samples``,
    by default ``counts.fid_samples``."""
    counts = bench["counts"]
    return int(counts.get("sweep_fid_samples") or counts["fid_samples"])


def segment_per_map(bench: Mapping) -> int | None:
    """Images segmented per label map (``counts.segment_per_map``; None: every image)."""
    return bench["counts"].get("segment_per_map", 1)


def keep_images(bench: Mapping) -> str:
    """Which generated images outlive their scores: ``all``, ``grid`` (what the figures read) or ``none``."""
    return bench.get("keep_images", "all")


def generation_images(bench: Mapping, purpose: str, prior: str | None = None, mu=None) -> int:
    """Images of one setting: maps x samples (diversity); ``counts.fid_samples`` for Table 1's
    settings (and their further seeds), :func:`sweep_fid_samples` for the other FID settings (the
    mu sweep and the oracle curve). Without (prior, mu): ``counts.fid_samples``."""
    counts = bench["counts"]
    if purpose == "diversity":
        return counts["diversity_maps"] * counts["diversity_samples"]
    # Table 1's settings as generated (the normal prior's own setting under the controlnet start)
    if prior is None or purpose != "fid" or (prior, fmt_mu(mu)) in generated_settings(bench, table_settings(bench)):
        return counts["fid_samples"]
    return sweep_fid_samples(bench)


def num_generation_shards(bench: Mapping, purpose: str, prior: str | None = None, mu=None) -> int:
    return math.ceil(generation_images(bench, purpose, prior, mu) / bench["counts"]["shard_size"])


# The report products (workflow/rules/report.smk): the paper's tables, per benchmark and over all
# benchmarks, and the metrics CSV each table or figure reads (work/{bench}/metrics/{product}.csv).
TABLES = (1, 2, 3)
REPORT_PRODUCTS = ("table1", "table2", "table3", "mu_sweep", "oracle")


def report_products(bench: Mapping) -> list[str]:
    """The metrics CSVs a benchmark's tables and figures read (the oracle curve only with an oracle grid)."""
    return [p for p in REPORT_PRODUCTS if p != "oracle" or bench["mu"].get("oracle_grid")]


def report_jobs(bench: Mapping) -> int:
    """A benchmark's report jobs: metrics.csv, one metrics CSV per product, its tables, and the
    mu sweep, samples grid and (with an oracle grid) oracle plots."""
    plots = 2 + (1 if bench["mu"].get("oracle_grid") else 0)
    return 1 + len(report_products(bench)) + len(TABLES) + plots


def study_jobs() -> int:
    """Jobs of the study as a whole: the metric weights, the tables and the mu sweep over every
    benchmark, and ``all``."""
    return 1 + len(TABLES) + 1 + 1


# Table 1's reference rows (workflow/rules/score.smk rule reference_images): the folders scored
#   real_val: the segmenter on the real val images (mIoU/Acc ceiling)
#   real_train: real train images at the generated sample size (FID/KID floor against val)
#   vae_reconstruction: the val images through the base model's VAE (the floor of any latent method)
REFERENCE_FOLDERS = ("real_val", "real_train", "vae_reconstruction")


def seed_settings(bench) -> list[tuple[str, str, int]]:
    """(prior, mu, seed) of the Table 1 settings generated again under the further ``sampling.seeds``
    (the first seed's images are the ``fid`` ones): the between-seed spread beside the intervals."""
    mu = fmt_mu(bench["mu"]["table"])
    return [(p, mu, s) for s in bench.sampling_seeds[1:] for p in table_priors(bench)]
