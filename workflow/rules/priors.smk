"""Stage 3: the noise priors (section 4). Reference latents are encoded in shards, each prior
variant that needs fitting (``prior.needs_fit``) is fitted per shard, and the shards are merged
(the statistics are sums, so merging is exact). A prior whose file a rule of the config's
``extra_rules`` writes is never fitted here (``fitted_prior_pattern``)."""


rule encode_latents:
    input:
        index=data_index,
        base=base_dir,
    output:
        f"{WORK}/{{bench}}/latents/{{split}}/{{shard}}.safetensors",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        shard=lambda w: int(w.shard),
        num_shards=lambda w: (
            num_reference_shards(w.bench)
            if w.split in ("train", "train_joint")
            else num_val_latent_shards(w.bench)
        ),
        settings=digest("dataset", "resolution", "counts", "protocol"),
    log:
        log_path("encode_latents", "_{split}_{shard}"),
    threads: threads_for("encode_latents")
    resources:
        **resources_for("encode_latents"),
    conda:
        ENV
    shell:
        "{params.cmd} encode-latents --benchmark {params.bench} --base {input.base}"
        " --split {wildcards.split} --shard {params.shard} --num-shards {params.num_shards}"
        " --out {output} > {log} 2>&1"


rule fit_prior:
    input:
        # the N drawn reference images, or the joint prior's own (protocol joint_reference)
        lambda w: f"{WORK}/{w.bench}/latents/{reference_latent_set(BENCH[w.bench], w.prior)}/{w.shard}.safetensors",
    output:
        f"{WORK}/{{bench}}/priors/{{prior}}/shards/{{shard}}.safetensors",
    wildcard_constraints:
        prior=fitted_prior_pattern(),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        settings=digest("prior_options", "protocol"),
    log:
        log_path("fit_prior", "_{prior}_{shard}"),
    threads: threads_for("fit_prior")
    resources:
        **resources_for("fit_prior"),
    conda:
        ENV
    shell:
        "{params.cmd} fit-prior --benchmark {params.bench} --variant {wildcards.prior}"
        " --latents {input} --out {output} > {log} 2>&1"


rule merge_priors:
    input:
        lambda w: [
            f"{WORK}/{w.bench}/priors/{w.prior}/shards/{s}.safetensors"
            for s in shard_ids(num_reference_shards(w.bench))
        ],
    output:
        f"{WORK}/{{bench}}/priors/{{prior}}.safetensors",
    wildcard_constraints:
        prior=fitted_prior_pattern(),
    params:
        cmd=SCPDIFF,
    log:
        log_path("merge_priors", "_{prior}"),
    threads: threads_for("merge_priors")
    resources:
        **resources_for("merge_priors"),
    conda:
        ENV
    shell:
        "{params.cmd} merge-priors --out {output} {input} > {log} 2>&1"


rule import_priors:
    """The authors' released statistics (priors_from) as the official_* priors: no encoding or fitting."""
    input:
        official_stats_files,
    output:
        f"{WORK}/{{bench}}/priors/official_spatial.safetensors",
        f"{WORK}/{{bench}}/priors/official_categorical.safetensors",
        f"{WORK}/{{bench}}/priors/official_joint.safetensors",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        options=official_stats_options,
        stats=lambda w: BENCH[w.bench]["priors_from"]["official_stats"],
        folder=lambda w: f"{WORK}/{w.bench}/priors",
        settings=digest("priors_from", "prior_options"),
    log:
        log_path("import_priors"),
    threads: 1
    resources:
        **resources_for("merge_priors"),
    conda:
        ENV
    shell:
        "{params.cmd} import-priors {params.stats} --benchmark {params.bench} {params.options}"
        " --out {params.folder} > {log} 2>&1"


ruleorder: import_priors > merge_priors
