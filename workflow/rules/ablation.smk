"""The protocol ablation (not part of `all`): `snakemake results/{bench}/protocol_ablation.csv`.

Each knob that scpdiff.config.ablation keeps is flipped alone: its jobs read a benchmark file with
that one knob changed (work/{bench}/ablation/{knob}/benchmark.yaml) and reuse the benchmark's
models; the setting (the flip's prior at table_mu) is generated and scored as the study's own
settings are, by the same commands. Reference latents are encoded again only for a knob that
changes which images they are of; FID reference statistics only for one that changes the
reference set. The table compares each flip with the study's own run of the same setting."""


rule ablation_benchmark:
    output:
        f"{WORK}/{{bench}}/ablation/{{knob}}/benchmark.yaml",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        settings=digest("protocol", "mu"),
    log:
        log_path("ablation_benchmark", "_{knob}"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} protocol-ablation --benchmark {params.bench} --flip {wildcards.knob} --out {output} > {log} 2>&1"


rule ablation_latents:
    input:
        bench=f"{WORK}/{{bench}}/ablation/{{knob}}/benchmark.yaml",
        index=data_index,
        base=base_dir,
    output:
        f"{WORK}/{{bench}}/ablation/{{knob}}/latents/{{split}}/{{shard}}.safetensors",
    params:
        cmd=SCPDIFF,
        shard=lambda w: int(w.shard),
        num_shards=lambda w: num_reference_shards(w.bench),
    log:
        log_path("ablation_latents", "_{knob}_{split}_{shard}"),
    threads: threads_for("encode_latents")
    resources:
        **resources_for("encode_latents"),
    conda:
        ENV
    shell:
        "{params.cmd} encode-latents --benchmark {input.bench} --base {input.base} --split {wildcards.split}"
        " --shard {params.shard} --num-shards {params.num_shards} --out {output} > {log} 2>&1"


rule ablation_fit:
    input:
        bench=f"{WORK}/{{bench}}/ablation/{{knob}}/benchmark.yaml",
        latents=lambda w: ablation_latents(w.bench, w.knob),
    output:
        f"{WORK}/{{bench}}/ablation/{{knob}}/prior.safetensors",
    params:
        cmd=SCPDIFF,
        prior=lambda w: ablation_flip(w.bench, w.knob).prior,
    log:
        log_path("ablation_fit", "_{knob}"),
    threads: threads_for("fit_prior")
    resources:
        **resources_for("fit_prior"),
    conda:
        ENV
    shell:
        "{params.cmd} fit-prior --benchmark {input.bench} --variant {params.prior}"
        " --latents {input.latents} --out {output} > {log} 2>&1"


rule ablation_generate:
    input:
        unpack(ablation_generate_inputs),
    output:
        directory(f"{WORK}/{{bench}}/ablation/{{knob}}/samples/{{shard}}"),
    params:
        cmd=SCPDIFF,
        prior=lambda w: ablation_flip(w.bench, w.knob).prior,
        mu=lambda w: ablation_mu(w.bench, w.knob),
        options=lambda w, input: " ".join(
            ([f"--prior {input.prior}"] if "prior" in input.keys() else [])
            + (["--latents " + " ".join(input.latents)] if "latents" in input.keys() else [])
        ),
        shard=lambda w: int(w.shard),
        num_shards=lambda w: num_generation_shards(w.bench, "fid"),
    log:
        log_path("ablation_generate", "_{knob}_{shard}"),
    threads: threads_for("generate")
    resources:
        **resources_for("generate"),
    conda:
        ENV
    shell:
        "{params.cmd} generate --benchmark {input.bench} --base {input.base} --controlnet {input.controlnet}"
        " --variant {params.prior} {params.options} --mu {params.mu} --split val --shard {params.shard}"
        " --num-shards {params.num_shards} --out {output} > {log} 2>&1"


rule ablation_ref_stats:
    input:
        bench=f"{WORK}/{{bench}}/ablation/{{knob}}/benchmark.yaml",
        index=data_index,
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/ablation/{{knob}}/fid_ref.npz",
    params:
        cmd=SCPDIFF,
        cache=weights_cache,
    log:
        log_path("ablation_ref_stats", "_{knob}"),
    threads: threads_for("ref_stats")
    resources:
        **resources_for("ref_stats"),
    conda:
        ENV
    shell:
        "{params.cmd} ref-stats --benchmark {input.bench} --split val --cache {params.cache}"
        " --out {output} > {log} 2>&1"


rule ablation_score:
    input:
        bench=f"{WORK}/{{bench}}/ablation/{{knob}}/benchmark.yaml",
        shards=lambda w: [f"{ablation_dir(w.bench, w.knob)}/samples/{s}"
                          for s in shard_ids(num_generation_shards(w.bench, "fid"))],
        ref=lambda w: ablation_ref_stats(w.bench, w.knob),
        segmenter=segmenter_checkpoint,
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/ablation/{{knob}}/score.json",
    params:
        cmd=SCPDIFF,
        cache=weights_cache,
        # the flip's own FID-mask rule decides whether only the maps with images are scored
        subset=lambda w: (
            "--allow-subset"
            if ablation_bench(w.bench, w.knob).protocol["fid_masks"] == "with_replacement"
            else fid_subset_option(w)
        ),
        segmenter=lambda w, input: (
            f"--segmenter-checkpoint {input.segmenter}" if input.segmenter else ""
        ),
        bootstrap=bootstrap_options,
    log:
        log_path("ablation_score", "_{knob}"),
    threads: threads_for("score")
    resources:
        **resources_for("score"),
    conda:
        ENV
    shell:
        "{params.cmd} score --images {input.shards} --benchmark {input.bench} --split val"
        " --ref-stats {input.ref} {params.segmenter} {params.subset} {params.bootstrap}"
        " --cache {params.cache} --out {output} > {log} 2>&1"


rule protocol_ablation:
    input:
        defaults=lambda w: list(ablation_default_scores(w.bench).values()),
        flips=lambda w: [f"{ablation_dir(w.bench, k)}/score.json" for k in ablation_knobs(w.bench)],
    output:
        f"{RESULTS}/{{bench}}/protocol_ablation.csv",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        scores=lambda w, input: " ".join(
            [f"--default-score {p} {f}" for p, f in zip(ablation_default_scores(w.bench), input.defaults)]
            + [f"--flip-score {k} {f}" for k, f in zip(ablation_knobs(w.bench), input.flips)]
        ),
    log:
        log_path("protocol_ablation"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} protocol-ablation --benchmark {params.bench} {params.scores} --out {output} > {log} 2>&1"
