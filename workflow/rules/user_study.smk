"""Table 4 (paper section 5.5): the user study's folder, built from the workflow's samples, and its
table once answers exist.

    snakemake user_study                    # work/{bench}/user_study/ for every benchmark
    scpdiff user-study invite work/toy/user_study --count 20
    scpdiff user-study serve work/toy/user_study
    snakemake                               # now also results/{bench}/table4/

The study is not part of `all`: people rank it between two runs. Its manifest is protected, so a
later change to the samples can never rebuild a study that participants are answering (the build
command also refuses a folder with an answers database); delete the folder to start a new study.
Settings: the workflow config's `user_study` block (workflow/schemas/config.schema.yaml).
"""

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


def user_study_inputs(wildcards):
    b = wildcards.bench
    shards = []
    for item in user_study_methods(b):
        prior, mu = item.rpartition("=")[2].split(":")
        shards += sample_shards(b, prior, fmt_mu(mu), "fid")
    return {"index": data_index(wildcards), "shards": shards}


def user_study_options(wildcards):
    b = wildcards.bench
    cfg = config["user_study"]
    opts = ["--methods", *map(shlex.quote, user_study_methods(b))]
    images = (cfg.get("images") or {}).get(b) or {}
    if images:
        opts += ["--images", *(shlex.quote(f"{label}={folder}") for label, folder in images.items())]
    # the paper ranks 500 groups; a small benchmark generates fewer label maps than that
    groups = cfg.get("groups") or min(500, BENCH[b]["counts"]["fid_samples"])
    opts += ["--groups", str(groups), "--seed", str(cfg.get("seed", 0))]
    return " ".join(opts)


def user_study_targets():
    """Table 4 of every benchmark whose study has an answers database."""
    return [
        f"{RESULTS}/{b}/table4/table4.{ext}"
        for b in BENCH
        if os.path.exists(f"{user_study_dir(b)}/answers.sqlite")
        for ext in ("csv", "tex")
    ]


rule user_study_build:
    input:
        unpack(user_study_inputs),
    output:
        protected(f"{WORK}/{{bench}}/user_study/manifest.csv"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        options=user_study_options,
        work=WORK,
        out=lambda w: user_study_dir(w.bench),
    log:
        log_path("user_study_build"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} user-study build --benchmark {params.bench} {params.options}"
        " --work-dir {params.work} --out {params.out} > {log} 2>&1"


rule user_study:
    input:
        [f"{user_study_dir(b)}/manifest.csv" for b in BENCH],


# The table reads the answers only: the study it belongs to is the folder around them (a manifest
# input would tie the table to the samples, and new samples would ask to rebuild a running study).
rule table4:
    input:
        answers=f"{WORK}/{{bench}}/user_study/answers.sqlite",
    output:
        csv=report(
            f"{RESULTS}/{{bench}}/table4/table4.csv",
            caption="../report/table4.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "Table 4"},
        ),
        tex=f"{RESULTS}/{{bench}}/table4/table4.tex",
        summary=f"{RESULTS}/{{bench}}/table4/table4_summary.json",
    params:
        cmd=SCPDIFF,
        study=lambda w: user_study_dir(w.bench),
        out=lambda w, output: os.path.dirname(output.csv),
    log:
        log_path("table4"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} user-study results {params.study} --out {params.out} > {log} 2>&1"
