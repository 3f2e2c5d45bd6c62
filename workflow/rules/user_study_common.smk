"""Definitions for Table 4's rules (workflow/rules/user_study.smk): the compared settings, the
study folder, the build options and the table targets (kept apart from the rules, as Snakemake's
lint asks)."""

import shlex


def user_study_methods(b):
    """`[LABEL=]PRIOR:MU` of each compared setting: the config's, or by default the normal prior at
    mu = 1 (plain ControlNet inference) and every other table prior at the benchmark's mu."""
    methods = (config["user_study"].get("methods") or [])
    if methods:
        return list(methods)
    mu = fmt_mu(BENCH[b]["mu"]["table"])
    return ["normal:1"] + [f"{p}:{mu}" for p in table_priors(b) if p != "normal"]


def user_study_dir(b):
    return f"{WORK}/{b}/user_study"


def _method_setting(b, item):
    """(prior, mu) of the images a `[LABEL=]PRIOR:MU` method shows: the generated setting it reads
    (settings.sample_mu: the normal prior under the ControlNet start is generated once, at mu 1)."""
    prior, mu = item.rpartition("=")[2].split(":")
    return prior, settings.sample_mu(BENCH[b], prior, mu)


def user_study_inputs(wildcards):
    b = wildcards.bench
    shards = []
    for item in user_study_methods(b):
        shards += sample_shards(b, *_method_setting(b, item), "fid")
    return {"index": data_index(wildcards), "shards": shards}


def user_study_options(wildcards):
    b = wildcards.bench
    cfg = config["user_study"]
    opts = ["--methods", *map(shlex.quote, user_study_methods(b))]
    images = (cfg.get("images") or {}).get(b) or {}
    if images:
        opts += ["--images", *(shlex.quote(f"{label}={folder}") for label, folder in images.items())]
    # the paper ranks 500 groups; a small benchmark (or a mu-sweep point of counts.sweep_fid_samples)
    # generates fewer label maps than that
    images = [generation_images(b, "fid", *_method_setting(b, item)) for item in user_study_methods(b)]
    groups = cfg.get("groups") or min([500, *images])
    opts += ["--groups", str(groups), "--seed", str(cfg.get("seed", 0))]
    return " ".join(opts)


def benches_with_answers():
    """The benchmarks whose study has an answers database (people ranked between two runs)."""
    return [b for b in BENCH if os.path.exists(f"{user_study_dir(b)}/answers.sqlite")]


def user_study_targets():
    """Table 4 of every benchmark whose study has an answers database, and over all of them
    results/table4.{csv,tex} (the paper's Tables 1-3 layout; one benchmark: its table)."""
    answered = benches_with_answers()
    out = [f"{RESULTS}/{b}/table4/table4.{ext}" for b in answered for ext in ("csv", "tex")]
    if answered:
        out += [f"{RESULTS}/table4.{ext}" for ext in ("csv", "tex")]
    return out
