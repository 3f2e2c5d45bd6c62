"""Stage 5: scoring (section 5.1): FID/KID against the real validation set, mIoU/accuracy with
the benchmark's segmenter, and LPIPS/MS-SSIM diversity (Table 3), each with its bootstrap interval
over label maps (the benchmark's ``uncertainty``); the Table 1 settings again under the other
``sampling.seeds``; and the reference rows (real images, VAE reconstructions) by the same scorer."""


rule weights:
    output:
        f"{CACHE}/weights/manifest.json",
    params:
        cmd=SCPDIFF,
        cache=lambda w, output: os.path.dirname(os.path.dirname(output[0])),
    log:
        f"{CACHE}/logs/weights.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
        gpu=0,
    conda:
        ENV
    shell:
        "{params.cmd} weights --cache {params.cache} > {log} 2>&1"


rule ref_stats:
    input:
        index=data_index,
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/fid_ref.npz",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        cache=weights_cache,
        settings=digest("dataset", "resolution"),
    log:
        log_path("ref_stats"),
    threads: threads_for("ref_stats")
    resources:
        **resources_for("ref_stats"),
    conda:
        ENV
    shell:
        "{params.cmd} ref-stats --benchmark {params.bench} --split val --cache {params.cache}"
        " --out {output} > {log} 2>&1"


rule score_shard:
    """One generation shard's mergeable statistics: Inception features and the confusion matrix of
    each segmented label map (scpdiff.metrics.scoring.ImageStatistics). A shard score killed or
    removed is redone alone."""
    input:
        shard=f"{WORK}/{{bench}}/samples/{{prior}}/mu{{mu}}/{{purpose}}/{{shard}}",
        segmenter=segmenter_checkpoint,
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/scores/{{prior}}/mu{{mu}}/{{purpose,fid|fid_seed[0-9]+}}/{{shard}}.npz",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        cache=weights_cache,
        segmenter=lambda w, input: (
            f"--segmenter-checkpoint {input.segmenter}" if input.segmenter else ""
        ),
        segment=segment_option,
    log:
        log_path("score", "_{prior}_mu{mu}_{purpose}_{shard}"),
    threads: threads_for("score_shard")
    resources:
        **resources_for("score_shard"),
    conda:
        ENV
    shell:
        # one shard covers some label maps only: the merge checks the setting's coverage
        "{params.cmd} score --images {input.shard} --benchmark {params.bench} --split val --allow-subset"
        " {params.segmenter} {params.segment} --cache {params.cache} --out {output} > {log} 2>&1"


FID_PURPOSE = lambda w: "fid"
SEED_PURPOSE = lambda w: f"fid_seed{w.seed}"
FID_THREADS, FID_RESOURCES = setting_scoring_resources(FID_PURPOSE)
SEED_THREADS, SEED_RESOURCES = setting_scoring_resources(SEED_PURPOSE)


rule score_fid:
    """FID/KID, mIoU/Acc and their bootstrap intervals of one setting: the merge of its shards'
    statistics, or a one-shard setting's images scored in the same job (setting_scoring_command);
    either way the numbers of one pass over every image."""
    input:
        unpack(setting_scoring_inputs(FID_PURPOSE)),
    output:
        f"{WORK}/{{bench}}/scores/{{prior}}/mu{{mu}}.json",
    params:
        cmd=SCPDIFF,
        step=setting_scoring_command,
        bench=bench_yaml,
        subset=fid_subset_option,
        bootstrap=bootstrap_options,
        settings=digest("uncertainty"),
    log:
        log_path("merge_scores", "_{prior}_mu{mu}"),
    threads: FID_THREADS
    resources:
        **FID_RESOURCES,
    conda:
        ENV
    shell:
        "{params.cmd} {params.step} --benchmark {params.bench} --split val"
        " --ref-stats {input.ref} {params.subset} {params.bootstrap} --out {output} > {log} 2>&1"


use rule score_fid as score_fid_seed with:
    input:
        unpack(setting_scoring_inputs(SEED_PURPOSE)),
    output:
        f"{WORK}/{{bench}}/scores/{{prior}}/mu{{mu}}_seed{{seed}}.json",
    threads: SEED_THREADS
    resources:
        **SEED_RESOURCES,
    log:
        log_path("merge_scores", "_{prior}_mu{mu}_seed{seed}"),


rule reference_images:
    input:
        index=data_index,
        base=lambda w: [base_dir(w)] if w.ref == "vae_reconstruction" else [],
    output:
        directory(f"{WORK}/{{bench}}/reference/{{ref}}"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        split=lambda w: "train" if w.ref == "real_train" else "val",
        num=lambda w: BENCH[w.bench]["counts"]["fid_samples"],
        base=lambda w, input: f"--base {input.base}" if input.base else "",
        settings=digest("dataset", "resolution", "counts"),
    log:
        log_path("reference_images", "_{ref}"),
    threads: threads_for("generate")
    resources:
        **resources_for("generate"),
    conda:
        ENV
    shell:
        "{params.cmd} reference-images --benchmark {params.bench} --split {params.split}"
        " --num {params.num} {params.base} --out {output} > {log} 2>&1"


if benches_keeping("none", "grid"):

    # keep_images none / grid: the reference folders go once their scores exist (as generate.smk)
    use rule reference_images as reference_images_discarded with:
        output:
            temp(directory(f"{WORK}/{{bench,{'|'.join(benches_keeping('none', 'grid'))}}}/reference/{{ref}}")),

    ruleorder: reference_images_discarded > reference_images


rule score_reference:
    input:
        images=f"{WORK}/{{bench}}/reference/{{ref}}",
        ref=f"{WORK}/{{bench}}/fid_ref.npz",
        segmenter=segmenter_checkpoint,
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/scores/reference/{{ref}}.json",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        cache=weights_cache,
        options=reference_options,
        segment=segment_option,
        segmenter=lambda w, input: (
            f"--segmenter-checkpoint {input.segmenter}" if input.segmenter else ""
        ),
        bootstrap=bootstrap_options,
        settings=digest("uncertainty"),
    log:
        log_path("score", "_reference_{ref}"),
    threads: threads_for("score")
    resources:
        **resources_for("score"),
    conda:
        ENV
    shell:
        "{params.cmd} score --images {input.images} --benchmark {params.bench} {params.options}"
        " --ref-stats {input.ref} {params.segmenter} {params.segment} {params.bootstrap}"
        " --cache {params.cache} --out {output} > {log} 2>&1"


rule score_diversity:
    input:
        shards=lambda w: sample_shards(w.bench, w.prior, w.mu, "diversity"),
        weights=f"{CACHE}/weights/manifest.json",
    output:
        f"{WORK}/{{bench}}/scores/{{prior}}/mu{{mu}}_diversity.json",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        cache=weights_cache,
        bootstrap=bootstrap_options,
        settings=digest("uncertainty"),
    log:
        log_path("score", "_{prior}_mu{mu}_diversity"),
    threads: threads_for("score")
    resources:
        **resources_for("score"),
    conda:
        ENV
    shell:
        # the diversity samples repeat a few label maps: LPIPS/MS-SSIM only
        "{params.cmd} score --images {input.shards} --benchmark {params.bench} --diversity"
        " --no-fid --no-segmentation {params.bootstrap} --cache {params.cache} --out {output} > {log} 2>&1"
