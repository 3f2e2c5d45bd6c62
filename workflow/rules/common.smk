"""Shared definitions: the validated config, the resolved benchmarks, the settings each benchmark
generates, shard counts, model locations and per-stage resources.

Every rule is generic over ``{bench}``, ``{prior}``, ``{mu}`` and ``{shard}``; what a prior needs
(fitting on reference latents, the paired real latents) is asked of the prior registry, so a
variant registered in the library (or in a ``plugins:`` module) flows through every stage.
"""

import hashlib
import json
import math
import os

from snakemake.exceptions import WorkflowError

from scpdiff.errors import ScpdiffError
from scpdiff.priors import get_prior_class
from scpdiff.config.workflow import (
    PLUGINS_ENV,
    import_plugins,
    resolve_benchmarks,
    validate_workflow_config,
    write_resolved_benchmark,
)

_config_source = "workflow config " + (", ".join(map(str, workflow.configfiles)) or "(none)")
try:
    config.update(validate_workflow_config(config, source=_config_source))
    import_plugins(config["plugins"], source=f"{_config_source}: plugins")
    BENCH = resolve_benchmarks(config, source=_config_source)
except ScpdiffError as exc:
    raise WorkflowError(str(exc)) from None

WORK = config["work_dir"].rstrip("/")
RESULTS = config["results_dir"].rstrip("/")
CACHE = config["cache_dir"].rstrip("/")
ENV = "../../environment.yml"

# Every job imports the same plugin modules (scpdiff.cli reads SCPDIFF_PLUGINS), on any executor.
SCPDIFF = f"{PLUGINS_ENV}={','.join(config['plugins'])} scpdiff" if config["plugins"] else "scpdiff"
# Multi-GPU stages start one process per GPU of their job (accelerate launch) through scpdiff.training.launcher.
_ENV_PREFIX = f"{PLUGINS_ENV}={','.join(config['plugins'])} " if config["plugins"] else ""
SCPDIFF_LAUNCH = f"{_ENV_PREFIX}python -m scpdiff.training.launcher"

# The resolved benchmark (overrides applied) is the file every job reads.
for _bench in BENCH.values():
    _bench.path = write_resolved_benchmark(_bench, WORK)


wildcard_constraints:
    bench="|".join(BENCH),
    prior="[A-Za-z0-9_]+",
    mu=r"[0-9]+(\.[0-9]+)?",
    shard=r"[0-9]{4}",
    split="train|val",
    purpose="fid|diversity|fid_seed[0-9]+",
    seed="[0-9]+",
    ref="real_val|real_train|vae_reconstruction",


def bench_yaml(wildcards):
    return str(BENCH[wildcards.bench].path)


def digest(*keys):
    """A params value that changes when the named benchmark sections change, so Snakemake's
    params rerun trigger redoes exactly the stages those settings feed."""

    def _digest(wildcards):
        bench = BENCH[wildcards.bench]
        blob = json.dumps({k: bench.get(k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    return _digest


# --------------------------------------------------------------------------- priors and settings


def prior_needs_fit(name):
    return bool(get_prior_class(name).needs_fit)


def prior_requires_latents(name):
    return bool(get_prior_class(name).requires_latents)


def fmt_mu(mu):
    return f"{float(mu):g}"


def _unique(items):
    return list(dict.fromkeys(items))


def fid_settings(b):
    """(prior, mu) pairs to generate and score for FID/mIoU: Table 1 (mu.table), Fig. 8 (mu.grid)
    and Fig. 3 (the oracle prior over mu.oracle_grid, against the normal prior at mu = 1)."""
    bench = BENCH[b]
    mus = _unique([fmt_mu(m) for m in [bench["mu"]["table"], *bench["mu"]["grid"]]])
    out = [(p, m) for p in bench["priors"] for m in mus]
    if bench["mu"].get("oracle_grid"):
        out += [("oracle", fmt_mu(m)) for m in bench["mu"]["oracle_grid"]]
        out.append(("normal", "1"))
    return _unique(out)


def diversity_settings(b):
    """(prior, mu) pairs for Table 3: every compared prior at mu.table."""
    bench = BENCH[b]
    return [(p, fmt_mu(bench["mu"]["table"])) for p in bench["priors"] if p != "oracle"]


def table_priors(b):
    return [p for p in BENCH[b]["priors"] if p != "oracle"]


def seed_settings(b):
    """(prior, mu, seed) of the Table 1 settings generated again under the other ``sampling.seeds``
    (the first seed's images are the ``fid`` ones): the between-seed spread beside the intervals."""
    bench = BENCH[b]
    mu = fmt_mu(bench["mu"]["table"])
    return [(p, mu, s) for s in bench.sampling_seeds[1:] for p in table_priors(b)]


# reference rows of Table 1 (reporting.tables.REFERENCE_ROWS): image folder -> (row, score options)
#   real_val: the segmenter on the real val images (mIoU/Acc ceiling)
#   real_train: real train images at the generated sample size (FID/KID floor against val)
#   vae_reconstruction: the val images through the base model's VAE (the floor of any latent method)
REFERENCE_IMAGES = {
    "real_val": ("real_images", "--split val --no-fid"),
    # masks of the train split name the images (a stem like train_00012 is no sample of "train")
    "real_train": ("real_images", "--split train --no-segmentation --allow-subset"),
    "vae_reconstruction": ("vae_reconstruction", "--split val"),
}


# --------------------------------------------------------------------------- shards


def shard_ids(n):
    return [f"{i:04d}" for i in range(n)]


def num_reference_shards(b):
    counts = BENCH[b]["counts"]
    return math.ceil(counts["reference"] / counts["shard_size"])


def num_val_latent_shards(b):
    """The oracle prior (Fig. 3) needs the real latents of the validation label maps. Their number
    is known before the data exists only for the toy datasets; a real split is encoded in one job
    (a few thousand images at most)."""
    bench = BENCH[b]
    num_val = bench["dataset"].get("num_val")
    return math.ceil(num_val / bench["counts"]["shard_size"]) if num_val else 1


def num_generation_shards(b, purpose):
    counts = BENCH[b]["counts"]
    if purpose == "diversity":
        total = counts["diversity_maps"] * counts["diversity_samples"]
    else:
        total = counts["fid_samples"]
    return math.ceil(total / counts["shard_size"])


def latent_shards(b, split):
    n = num_reference_shards(b) if split == "train" else num_val_latent_shards(b)
    return [f"{WORK}/{b}/latents/{split}/{s}.safetensors" for s in shard_ids(n)]


def reference_dir(b, ref):
    return f"{WORK}/{b}/reference/{ref}"


def reference_score_file(b, ref):
    return f"{WORK}/{b}/scores/reference/{ref}.json"


def sample_dir(b, prior, mu, purpose):
    return f"{WORK}/{b}/samples/{prior}/mu{mu}/{purpose}"


def sample_shards(b, prior, mu, purpose):
    n = num_generation_shards(b, purpose)
    return [f"{sample_dir(b, prior, mu, purpose)}/{s}" for s in shard_ids(n)]


def score_file(b, prior, mu, purpose):
    suffix = "_diversity" if purpose == "diversity" else ""
    return f"{WORK}/{b}/scores/{prior}/mu{mu}{suffix}.json"


def seed_score_file(b, prior, mu, seed):
    return f"{WORK}/{b}/scores/{prior}/mu{mu}_seed{seed}.json"


# --------------------------------------------------------------------------- models


def weights_cache(wildcards, input):
    """The cache folder holding weights/manifest.json (SCPDIFF_CACHE for the metric jobs)."""
    return os.path.dirname(os.path.dirname(input.weights))


def fid_subset_option(wildcards):
    """Fewer FID samples than validation label maps (a toy config) score only those maps."""
    bench = BENCH[wildcards.bench]
    num_val = bench["dataset"].get("num_val")
    return "--allow-subset" if num_val and bench["counts"]["fid_samples"] < num_val else ""


def bootstrap_options(wildcards):
    """The benchmark's ``uncertainty`` block: one seed for every setting, so differences pair up."""
    u = BENCH[wildcards.bench].uncertainty
    return f"--bootstrap-resamples {u['resamples']} --bootstrap-seed {u['seed']} --bootstrap-level {u['level']}"


def reference_options(wildcards):
    """How a reference folder is scored (REFERENCE_IMAGES), subset as the generated images are."""
    opts = REFERENCE_IMAGES[wildcards.ref][1]
    subset = fid_subset_option(wildcards) if "--split val" in opts else ""
    return f"{opts} {subset}".strip()


def data_index(wildcards):
    return f"{WORK}/{wildcards.bench}/data/index.json"


def base_dir(wildcards):
    bench = BENCH[wildcards.bench]
    return f"{WORK}/{bench.name}/models/base" if bench.is_toy else bench["models"]["base"]


def controlnet_dir(wildcards):
    bench = BENCH[wildcards.bench]
    return bench["models"].get("controlnet") or f"{WORK}/{bench.name}/models/controlnet"


def segmenter_checkpoint(wildcards):
    bench = BENCH[wildcards.bench]
    if bench.is_toy or bench["segmenter"]["kind"] == "toy":
        return [f"{WORK}/{bench.name}/models/segmenter"]
    ckpt = bench["segmenter"].get("checkpoint")
    return [ckpt] if ckpt else []


# --------------------------------------------------------------------------- resources

# Per-stage defaults for the real benchmarks; the toy ones run everything on CPU. A benchmark's
# `resources:` block overrides them per stage (or under `default`), e.g.
#   resources: {generate: {gpu: 1, mem_mb: 48000, runtime: 360}, default: {runtime: 60}}
# Names are the ones Snakemake and its SLURM executor plugin read (threads, mem_mb, runtime in
# minutes, gpu).
STAGE_RESOURCES = {
    "prepare_data": dict(threads=4, mem_mb=8000, runtime=120, gpu=0),
    "train_vae": dict(threads=2, mem_mb=4000, runtime=60, gpu=0),
    "train_base": dict(threads=2, mem_mb=4000, runtime=60, gpu=0),
    "train_segmenter": dict(threads=2, mem_mb=4000, runtime=60, gpu=0),
    "train_controlnet": dict(threads=8, mem_mb=64000, runtime=2880, gpu=1),
    "encode_latents": dict(threads=4, mem_mb=16000, runtime=60, gpu=1),
    "fit_prior": dict(threads=2, mem_mb=8000, runtime=60, gpu=0),
    "merge_priors": dict(threads=1, mem_mb=8000, runtime=30, gpu=0),
    "generate": dict(threads=4, mem_mb=32000, runtime=240, gpu=1),
    "ref_stats": dict(threads=4, mem_mb=16000, runtime=60, gpu=1),
    "score": dict(threads=4, mem_mb=32000, runtime=120, gpu=1),
    "report": dict(threads=1, mem_mb=4000, runtime=15, gpu=0),
}
# toy jobs are small: one thread each lets two of them (mostly Python start-up) share two cores
TOY_RESOURCES = dict(threads=1, mem_mb=4000, runtime=60, gpu=0)


def stage_resource(stage, key, wildcards):
    bench = BENCH[wildcards.bench]
    value = (TOY_RESOURCES if bench.is_toy else STAGE_RESOURCES[stage])[key]
    if stage == "train_controlnet" and key == "gpu" and not bench.is_toy:
        value = bench.get("training", {}).get("controlnet", {}).get("gpus", value)
    block = bench.get("resources") or {}
    for section in ("default", stage):
        if key in (block.get(section) or {}):
            value = block[section][key]
    return value


def threads_for(stage):
    return lambda wildcards: int(stage_resource(stage, "threads", wildcards))


def resources_for(stage):
    """``resources: **resources_for("generate")`` -- mem_mb, runtime and gpu from the benchmark."""
    return {
        key: (lambda wildcards, key=key: stage_resource(stage, key, wildcards))
        for key in ("mem_mb", "runtime", "gpu")
    }


def log_path(stage, pattern=""):
    return f"{WORK}/{{bench}}/logs/{stage}{pattern}.log"


# --------------------------------------------------------------------------- rule inputs and options


def generate_inputs(wildcards):
    b, prior = wildcards.bench, wildcards.prior
    inputs = {
        "index": data_index(wildcards),
        "base": base_dir(wildcards),
        "controlnet": controlnet_dir(wildcards),
    }
    if prior_needs_fit(prior):
        inputs["prior"] = f"{WORK}/{b}/priors/{prior}.safetensors"
    if prior_requires_latents(prior):
        inputs["latents"] = latent_shards(b, "val")
    return inputs


def generate_options(wildcards, input):
    """The optional command-line part: the fitted prior, the paired latents, the repeats."""
    opts = []
    if "prior" in input.keys():
        opts.append(f"--prior {input.prior}")
    if "latents" in input.keys():
        opts.append("--latents " + " ".join(input.latents))
    if wildcards.purpose == "diversity":
        counts = BENCH[wildcards.bench]["counts"]
        opts.append(f"--repeats {counts['diversity_samples']} --maps {counts['diversity_maps']}")
    if wildcards.purpose.startswith("fid_seed"):
        opts.append(f"--seed {wildcards.purpose[len('fid_seed'):]}")
    return " ".join(opts)


def score_inputs(wildcards):
    b = wildcards.bench
    return {
        "fid": [score_file(b, p, m, "fid") for p, m in fid_settings(b)],
        "diversity": [score_file(b, p, m, "diversity") for p, m in diversity_settings(b)],
        "seeds": [seed_score_file(b, p, m, s) for p, m, s in seed_settings(b)],
        "reference": [reference_score_file(b, ref) for ref in REFERENCE_IMAGES],
    }


def score_options(wildcards, input):
    """``--score PRIOR MU FILE`` for every scored setting (the file names carry no meaning), the
    other seeds' scores and the reference rows' scores."""
    b = wildcards.bench
    opts = [
        f"--score {p} {m} {f}" for (p, m), f in zip(fid_settings(b), input.fid)
    ] + [
        f"--diversity-score {p} {m} {f}"
        for (p, m), f in zip(diversity_settings(b), input.diversity)
    ] + [
        f"--seed-score {p} {m} {s} {f}" for (p, m, s), f in zip(seed_settings(b), input.seeds)
    ] + [
        f"--reference-score {REFERENCE_IMAGES[ref][0]} {f}"
        for ref, f in zip(REFERENCE_IMAGES, input.reference)
    ]
    return " ".join(opts)


def samples_grid_inputs(wildcards):
    b = wildcards.bench
    mu = fmt_mu(BENCH[b]["mu"]["table"])
    # the first shard holds the first label maps of the validation split
    return {
        "index": data_index(wildcards),
        "shards": [sample_shards(b, p, mu, "fid")[0] for p in table_priors(b)],
    }


# --------------------------------------------------------------------------- targets


def bench_results(b):
    bench = BENCH[b]
    r = f"{RESULTS}/{b}"
    out = [f"{r}/metrics.csv"]
    out += [f"{r}/table{i}.{ext}" for i in (1, 2, 3) for ext in ("csv", "tex")]
    out += [f"{r}/mu_sweep.{ext}" for ext in ("png", "pdf", "csv")]
    out += [f"{r}/samples.png"]
    if bench["mu"].get("oracle_grid"):
        out += [f"{r}/oracle.png", f"{r}/oracle.csv"]
    return out


def summary_results():
    r = f"{RESULTS}/summary"
    return [f"{r}/table{i}.{ext}" for i in (1, 2, 3) for ext in ("csv", "tex")]


def all_targets():
    out = [t for b in BENCH for t in bench_results(b)]
    if len(BENCH) > 1:
        out += summary_results()
    return out
