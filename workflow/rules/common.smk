"""Shared definitions: the validated config, the resolved benchmarks, the settings each benchmark
generates, shard counts, model locations and per-stage resources.

Every rule is generic over ``{bench}``, ``{prior}``, ``{mu}`` and ``{shard}``; what a prior needs
(fitting on reference latents, the paired real latents) is asked of the prior registry, so a
variant registered in the library (or in a ``plugins:`` module) flows through every stage; a prior
whose file a rule of ``extra_rules`` writes is read from that file instead of being fitted.
"""

import hashlib
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.io import strip_wildcard_constraints

from scpdiff.errors import ScpdiffError
from scpdiff.priors import available, get_prior_class
from scpdiff.priors.for_benchmark import reference_latent_set
from scpdiff.config import settings
from scpdiff.utils.forkserver import SOCKET_ENV as FORKSERVER_ENV
from scpdiff.utils.forkserver import server_directory as forkserver_directory
from scpdiff.utils.forkserver import start as start_forkserver
from scpdiff.utils.forkserver import stop as stop_forkserver
from scpdiff.config.workflow import (
    PLUGINS_ENV,
    check_benchmark_priors,
    import_plugins,
    resolve_benchmarks,
    resolve_extra_rules,
    rule_made_priors,
    validate_workflow_config,
    write_resolved_benchmark,
)

_config_source = "workflow config " + (", ".join(map(str, workflow.configfiles)) or "(none)")
try:
    config.update(validate_workflow_config(config, source=_config_source))
    import_plugins(config["plugins"], source=f"{_config_source}: plugins")
    # the priors are checked once the extra rules are read (check_priors below)
    BENCH = resolve_benchmarks(config, source=_config_source, check_priors=False)
    EXTRA_RULES = resolve_extra_rules(config, source=_config_source)
except ScpdiffError as exc:
    raise WorkflowError(str(exc)) from None

WORK = config["work_dir"].rstrip("/")
RESULTS = config["results_dir"].rstrip("/")
# The fork server's socket folder (see the Snakefile)
FORKSERVER_DIR = forkserver_directory(os.getpid())


def use_forkserver(workflow, config) -> bool:
    """Jobs run here, in this Python environment: a local run without conda or containers."""
    return bool(config["forkserver"]) and workflow.local_exec and not workflow.remote_exec \
        and not workflow.deployment_settings.deployment_method
CACHE = config["cache_dir"].rstrip("/")
ENV = "../../environment.yml"

SCPDIFF = "scpdiff"
# Multi-GPU stages start one process per GPU of their job (accelerate launch) through scpdiff.training.launcher.
SCPDIFF_LAUNCH = "python -m scpdiff.training.launcher"
# Every job imports the same plugin modules (scpdiff.cli reads SCPDIFF_PLUGINS), on any executor (a
# remote job reads this Snakefile too). The variable is exported by the shell prefix rather than
# written into each command, so adding a plugin (a new prior variant) changes no rule's params and
# reruns nothing already made.
if config["plugins"]:
    shell.prefix(f"set -euo pipefail; export {PLUGINS_ENV}={shlex.quote(','.join(config['plugins']))}; ")

# The resolved benchmark (overrides applied) is the file every job reads.
for _bench in BENCH.values():
    _bench.path = write_resolved_benchmark(_bench, WORK)


wildcard_constraints:
    bench="|".join(BENCH),
    prior="[A-Za-z0-9_]+",
    mu=r"[0-9]+(\.[0-9]+)?",
    shard=r"[0-9]{4}",
    split="train|val|train_joint",
    knob="[a-z_]+",
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
        values = {k: bench.get(k) for k in keys}
        if values.get("counts"):
            # the cost knobs reach their jobs as explicit options (--num-images, --segment-per-map):
            # setting one reruns only the jobs it changes
            values["counts"] = {k: v for k, v in values["counts"].items() if k not in settings.COST_KNOBS}
        blob = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    return _digest


# --------------------------------------------------------------------------- priors and settings

# benchmark -> prior names whose file a rule of `extra_rules` writes (set by check_priors)
RULE_MADE = {b: set() for b in BENCH}


def check_priors():
    """After the Snakefile included `extra_rules`: which priors their rules write, and is every
    benchmark's prior either registered or written by one of them."""
    outputs = [strip_wildcard_constraints(str(out)) for rule in workflow.rules
               if os.path.realpath(str(rule.snakefile)) in EXTRA_RULES for out in rule.output]
    try:
        RULE_MADE.update(rule_made_priors(outputs, WORK, BENCH))
        check_benchmark_priors(BENCH, RULE_MADE, source=_config_source)
    except ScpdiffError as exc:
        raise WorkflowError(str(exc)) from None


def fitted_prior_pattern():
    """The registered variants the workflow fits itself (fit_prior, merge_priors): never one whose
    file a user rule writes."""
    made = set().union(*RULE_MADE.values())
    names = [n for n in available() if n not in made and get_prior_class(n).needs_fit]
    return "|".join(map(re.escape, names)) or "(?!)"


def prior_from_file(b, name):
    """Generation reads a prior file: a fitted variant's or one a user rule writes."""
    return name in RULE_MADE[b] or bool(get_prior_class(name).needs_fit)


def prior_requires_latents(b, name):
    return name not in RULE_MADE[b] and bool(get_prior_class(name).requires_latents)


def fmt_mu(mu):
    return settings.fmt_mu(mu)


# The enumeration lives in scpdiff.config.settings, shared with `scpdiff plan`.
def fid_settings(b):
    return settings.fid_settings(BENCH[b])


def sample_mu(b, prior, mu):
    return settings.sample_mu(BENCH[b], prior, mu)


def diversity_settings(b):
    return settings.diversity_settings(BENCH[b])


def table_priors(b):
    return settings.table_priors(BENCH[b])


def seed_settings(b):
    return settings.seed_settings(BENCH[b])


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
assert tuple(REFERENCE_IMAGES) == settings.REFERENCE_FOLDERS  # scpdiff plan counts the same folders


# --------------------------------------------------------------------------- shards


def shard_ids(n):
    return [f"{i:04d}" for i in range(n)]


def num_reference_shards(b):
    return settings.num_reference_shards(BENCH[b])


def num_val_latent_shards(b):
    return settings.num_val_latent_shards(BENCH[b])


def num_generation_shards(b, purpose, prior=None, mu=None):
    return settings.num_generation_shards(BENCH[b], purpose, prior, mu)


def generation_images(b, purpose, prior=None, mu=None):
    return settings.generation_images(BENCH[b], purpose, prior, mu)


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
    n = num_generation_shards(b, purpose, prior, mu)
    return [f"{sample_dir(b, prior, mu, purpose)}/{s}" for s in shard_ids(n)]


def shard_statistics(b, prior, mu, purpose):
    """The per-shard score statistics of one setting (rule score_shard), merged by score_fid."""
    n = num_generation_shards(b, purpose, prior, mu)
    return [f"{WORK}/{b}/scores/{prior}/mu{mu}/{purpose}/{s}.npz" for s in shard_ids(n)]


def setting_scoring_inputs(purpose_of):
    """Inputs of a setting's row (rules score_fid*): its shards' statistics (rule score_shard), or,
    when the setting is one shard, the images themselves, scored and summarised by one job (no
    statistics file, no second process loading the networks again)."""

    def _inputs(w):
        purpose = purpose_of(w)
        shards = sample_shards(w.bench, w.prior, w.mu, purpose)
        ref = {"ref": f"{WORK}/{w.bench}/fid_ref.npz"}
        if len(shards) > 1:
            return {"statistics": shard_statistics(w.bench, w.prior, w.mu, purpose), **ref}
        return {"images": shards[0], "segmenter": segmenter_checkpoint(w),
                "weights": f"{CACHE}/weights/manifest.json", **ref}

    return _inputs


def setting_scoring_command(w, input):
    """``merge-scores`` of the shard statistics, or ``score`` of a one-shard setting's images: the
    same row (scpdiff.metrics.folder_score.merge_scores), the reference and options alike."""
    if "statistics" in input.keys():
        return f"merge-scores --statistics {' '.join(input.statistics)}"
    segmenter = f"--segmenter-checkpoint {input.segmenter}" if input.segmenter else ""
    return f"score --images {input.images} {segmenter} {segment_option(w)} --cache {weights_cache(w, input)}"


def setting_scoring_resources(purpose_of):
    """A one-shard setting's row job does the scoring: a shard score's threads and resources; a merge
    is a report job."""

    def stage(w):
        return "score_shard" if num_generation_shards(w.bench, purpose_of(w), w.prior, w.mu) == 1 else "report"

    threads = lambda w: int(stage_resource(stage(w), "threads", w))
    return threads, {key: (lambda w, key=key: stage_resource(stage(w), key, w)) for key in ("mem_mb", "runtime", "gpu")}


# Generated images outlive their scores per the benchmark's keep_images (generate.smk): `none` and
# `grid` mark them temp(), so Snakemake deletes a shard once every job reading it (its shard score,
# the samples grid, the user study) has finished, and a rerun does not regenerate it while those
# outputs stand; `grid` keeps the first shard of every FID setting (the samples grid and the user
# study read the first label maps).
def benches_keeping(*modes):
    return [b for b in BENCH if settings.keep_images(BENCH[b]) in modes]


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
    """Fewer FID samples than validation label maps (a toy config, a mu-sweep point), or label maps
    drawn with replacement (protocol fid_masks, docs/protocol.md), score only the maps that have images."""
    bench = BENCH[wildcards.bench]
    num_val = bench["dataset"].get("num_val")
    drawn = bench.protocol["fid_masks"] == "with_replacement"
    # a setting's images (rules score_shard, score_fid*), else counts.fid_samples (the reference rows)
    w = dict(wildcards.items())
    purpose = w.get("purpose") or ("fid_seed" if "seed" in w else "fid")
    images = generation_images(wildcards.bench, purpose, w.get("prior"), w.get("mu"))
    return "--allow-subset" if drawn or (num_val and images < num_val) else ""


def segment_option(wildcards):
    """The benchmark's counts.segment_per_map (OASIS: one image per label map)."""
    k = settings.segment_per_map(BENCH[wildcards.bench])
    return f"--segment-per-map {k}" if k else ""


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


def released_dir(bench):
    """The imported release (models.controlnet_checkpoint): one folder is base and ControlNet."""
    return f"{WORK}/{bench.name}/models/released" if bench["models"].get("controlnet_checkpoint") else None


def base_dir(wildcards):
    bench = BENCH[wildcards.bench]
    if released_dir(bench):
        return released_dir(bench)
    return f"{WORK}/{bench.name}/models/base" if bench.is_toy else bench["models"]["base"]


def controlnet_dir(wildcards):
    bench = BENCH[wildcards.bench]
    return released_dir(bench) or bench["models"].get("controlnet") or f"{WORK}/{bench.name}/models/controlnet"


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
    # one generation shard (shard_size images; the segmenter on segment_per_map of them per map):
    # minutes, so a grouped setting's shards fit one allocation (profiles/slurm)
    "score_shard": dict(threads=4, mem_mb=16000, runtime=10, gpu=1),
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
    if prior_from_file(b, prior):
        inputs["prior"] = f"{WORK}/{b}/priors/{prior}.safetensors"
    if prior_requires_latents(b, prior):
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
    counts = BENCH[wildcards.bench]["counts"]
    images = generation_images(wildcards.bench, wildcards.purpose, wildcards.prior, wildcards.mu)
    if wildcards.purpose != "diversity" and images != counts["fid_samples"]:
        opts.append(f"--num-images {images}")  # a mu-sweep / oracle point (counts.sweep_fid_samples)
    return " ".join(opts)


# What each report product is made from, so that a single table or figure asks for no more
# generation and scoring than it shows: "table1".."table3", "mu_sweep", "oracle", and "all"
# (results/{bench}/metrics.csv, every scored setting).
REPORT_PRODUCTS = settings.REPORT_PRODUCTS
# products that show the between-seed spread (Table 1's settings under sampling.seeds) and the
# reference rows (real images, VAE reconstruction)
SEED_PRODUCTS = ("table1", "all")
REFERENCE_PRODUCTS = ("table1", "mu_sweep", "all")


def product_settings(b, product):
    """(FID/mIoU settings, diversity settings) as (prior, mu) pairs that ``product`` needs."""
    mu = fmt_mu(BENCH[b]["mu"]["table"])
    fid = fid_settings(b)
    if product in ("table1", "table2"):
        return [(p, mu) for p in table_priors(b)], []
    if product == "table3":
        return [], diversity_settings(b)
    if product == "mu_sweep":
        return [(p, m) for p, m in fid if p != "oracle"], []
    if product == "oracle":
        return [(p, m) for p, m in fid if p == "oracle" or (p == "normal" and m == "1")], []
    return fid, diversity_settings(b)


def product_seeds(b, product):
    return seed_settings(b) if product in SEED_PRODUCTS else []


def product_references(b, product):
    return list(REFERENCE_IMAGES) if product in REFERENCE_PRODUCTS else []


def bench_products(b):
    """The report products of benchmark ``b`` (the oracle figure only with an oracle grid)."""
    return settings.report_products(BENCH[b])


def product_metrics(b, product):
    """The metrics CSV holding exactly the settings ``product`` needs (rule collect_metrics)."""
    return f"{WORK}/{b}/metrics/{product}.csv"


def score_inputs(product):
    """``input: unpack(score_inputs("table1"))`` -- the score files of the product's settings, the
    other seeds' scores and the reference rows' scores it shows."""

    def _inputs(wildcards):
        b = wildcards.bench
        which = product or wildcards.product
        fid, diversity = product_settings(b, which)
        return {
            # a row reads the images of its setting's sample_mu (the normal prior: one setting)
            "fid": [score_file(b, p, sample_mu(b, p, m), "fid") for p, m in fid],
            "diversity": [score_file(b, p, sample_mu(b, p, m), "diversity") for p, m in diversity],
            "seeds": [seed_score_file(b, p, sample_mu(b, p, m), s) for p, m, s in product_seeds(b, which)],
            "reference": [reference_score_file(b, ref) for ref in product_references(b, which)],
        }

    return _inputs


def score_options(product):
    """``--score PRIOR MU FILE`` for every setting of the product (the file names carry no meaning),
    ``--seed-score`` and ``--reference-score`` likewise."""

    def _options(wildcards, input):
        b = wildcards.bench
        which = product or wildcards.product
        fid, diversity = product_settings(b, which)
        opts = [f"--score {p} {m} {f}" for (p, m), f in zip(fid, input.fid)]
        opts += [f"--diversity-score {p} {m} {f}" for (p, m), f in zip(diversity, input.diversity)]
        opts += [f"--seed-score {p} {m} {s} {f}" for (p, m, s), f in zip(product_seeds(b, which), input.seeds)]
        opts += [f"--reference-score {REFERENCE_IMAGES[ref][0]} {f}"
                 for ref, f in zip(product_references(b, which), input.reference)]
        return " ".join(opts)

    return _options


def samples_grid_inputs(wildcards):
    b = wildcards.bench
    mu = fmt_mu(BENCH[b]["mu"]["table"])
    # the first shard holds the first label maps of the validation split
    return {
        "index": data_index(wildcards),
        "shards": [sample_shards(b, p, sample_mu(b, p, mu), "fid")[0] for p in table_priors(b)],
    }


def release_inputs(wildcards):
    """The released checkpoint to import (models.controlnet_checkpoint) and the base it completes."""
    bench = BENCH[wildcards.bench]
    models = bench["models"]
    inputs = {"checkpoint": models["controlnet_checkpoint"]}
    # the toy base is trained in the DAG; a real one is a folder on disk
    inputs["base"] = f"{WORK}/{bench.name}/models/base" if bench.is_toy else models["base"]
    if models.get("original_config"):
        inputs["original_config"] = models["original_config"]
    return inputs


def release_options(wildcards, input):
    models = BENCH[wildcards.bench]["models"]
    opts = ["--trust-pickle"] if models.get("trust_pickle") else []
    if "original_config" in input.keys():
        opts.append(f"--original-config {input.original_config}")
    return " ".join(opts)


def official_stats_files(wildcards):
    """The released statistics (priors_from) the official_* priors are imported from."""
    from scpdiff.priors.official import OFFICIAL_FILES

    source = BENCH[wildcards.bench].get("priors_from")
    if not source:
        raise WorkflowError(f"benchmark {wildcards.bench}: the official_* priors need priors_from: {{official_stats, name}}")
    return [os.path.join(source["official_stats"], f.format(name=source["name"])) for f in OFFICIAL_FILES.values()]


def official_stats_options(wildcards):
    source = BENCH[wildcards.bench]["priors_from"]
    return f"--name {source['name']}" + (" --trust-pickle" if source.get("trust_pickle") else "")


# --------------------------------------------------------------------------- targets


TABLES = settings.TABLES


def bench_results(b):
    bench = BENCH[b]
    r = f"{RESULTS}/{b}"
    out = [f"{r}/metrics.csv"]
    out += [f"{r}/table{i}.{ext}" for i in TABLES for ext in ("csv", "tex")]
    out += [f"{r}/mu_sweep.{ext}" for ext in ("png", "pdf", "csv")]
    out += [f"{r}/samples.png"]
    if bench["mu"].get("oracle_grid"):
        out += [f"{r}/oracle.png", f"{r}/oracle.csv"]
    return out


def study_results():
    """The paper's tables and the mu sweep over every configured benchmark (a column group, or a
    column of panels, per benchmark)."""
    out = [f"{RESULTS}/table{i}.{ext}" for i in TABLES for ext in ("csv", "tex")]
    out += [f"{RESULTS}/mu_sweep.{ext}" for ext in ("png", "pdf", "csv")]
    return out


def all_targets():
    return [t for b in BENCH for t in bench_results(b)] + study_results()
