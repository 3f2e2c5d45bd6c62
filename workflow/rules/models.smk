"""Stage 2: models. The toy benchmark trains its own VAE, base UNet and evaluation segmenter;
every benchmark fine-tunes a ControlNet (section 5.1) unless its config names one already."""


rule train_vae:
    input:
        index=data_index,
        # the LPIPS weights, when the VAE is trained with a perceptual term
        weights=lambda w: (
            [f"{CACHE}/weights/manifest.json"]
            if (BENCH[w.bench].get("training") or {}).get("vae", {}).get("perceptual_weight")
            else []
        ),
    output:
        directory(f"{WORK}/{{bench}}/models/vae"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        cache=lambda w, input: (
            f"--cache {os.path.dirname(os.path.dirname(input.weights[0]))}" if input.weights else ""
        ),
        settings=digest("dataset", "resolution", "training"),
    log:
        log_path("train_vae"),
    # the VAE -> base -> ControlNet chain gates every later stage: it goes first when cores are short
    priority: 10
    threads: threads_for("train_vae")
    resources:
        **resources_for("train_vae"),
    conda:
        ENV
    shell:
        "{params.cmd} train-vae --benchmark {params.bench} {params.cache} --out {output}"
        " > {log} 2>&1"


rule train_base:
    input:
        index=data_index,
        vae=f"{WORK}/{{bench}}/models/vae",
    output:
        directory(f"{WORK}/{{bench}}/models/base"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        settings=digest("dataset", "resolution", "prompt", "models", "training"),
    log:
        log_path("train_base"),
    priority: 10
    threads: threads_for("train_base")
    resources:
        **resources_for("train_base"),
    conda:
        ENV
    shell:
        "{params.cmd} train-base --benchmark {params.bench} --vae {input.vae} --out {output}"
        " > {log} 2>&1"


rule train_segmenter:
    input:
        data_index,
    output:
        directory(f"{WORK}/{{bench}}/models/segmenter"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        settings=digest("dataset", "resolution", "segmenter", "training"),
    log:
        log_path("train_segmenter"),
    threads: threads_for("train_segmenter")
    resources:
        **resources_for("train_segmenter"),
    conda:
        ENV
    shell:
        "{params.cmd} train-segmenter --benchmark {params.bench} --out {output} > {log} 2>&1"


rule train_controlnet:
    input:
        index=data_index,
        base=base_dir,
    output:
        directory(f"{WORK}/{{bench}}/models/controlnet"),
    params:
        launch=SCPDIFF_LAUNCH,
        bench=bench_yaml,
        settings=digest("dataset", "resolution", "prompt", "models", "training", "protocol"),
    log:
        log_path("train_controlnet"),
    priority: 10
    threads: threads_for("train_controlnet")
    resources:
        **resources_for("train_controlnet"),
    conda:
        ENV
    shell:
        # --resume auto: a requeued or restarted job continues from its last checkpoint
        # scpdiff.training.launcher: accelerate with one process per GPU when the job has several
        "{params.launch} --gpus {resources.gpu} -- train-controlnet --benchmark {params.bench} --base {input.base}"
        " --out {output} --resume auto > {log} 2>&1"


rule import_controlnet:
    """The authors' released ControlNet (models.controlnet_checkpoint) instead of fine-tuning."""
    input:
        unpack(release_inputs),
    output:
        directory(f"{WORK}/{{bench}}/models/released"),
    params:
        cmd=SCPDIFF,
        options=release_options,
    log:
        log_path("import_controlnet"),
    threads: 1
    resources:
        **resources_for("merge_priors"),
    conda:
        ENV
    shell:
        "{params.cmd} import-controlnet {input.checkpoint} --base {input.base} --out {output}"
        " {params.options} > {log} 2>&1"
