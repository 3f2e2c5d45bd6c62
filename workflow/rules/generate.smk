"""Stage 4: generation (Eq. 6). One job per (prior, mu, purpose, shard): ``fid`` shards hold the
FID/mIoU samples, ``diversity`` shards the repeated samples per label map of Table 3. Each image
has its own seed from (setting, index), so shards are independent; a shard folder appears
atomically, so a rerun after a kill redoes only the missing shards. One folder per shard keeps
every directory small on cluster file systems."""


rule generate:
    input:
        unpack(generate_inputs),
    output:
        directory(f"{WORK}/{{bench}}/samples/{{prior}}/mu{{mu}}/{{purpose}}/{{shard}}"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        options=generate_options,
        shard=lambda w: int(w.shard),
        num_shards=lambda w: num_generation_shards(w.bench, w.purpose, w.prior, w.mu),
        settings=digest("prompt", "sampling", "counts", "prior_options", "protocol"),
    log:
        log_path("generate", "_{prior}_mu{mu}_{purpose}_{shard}"),
    threads: threads_for("generate")
    resources:
        **resources_for("generate"),
    conda:
        ENV
    shell:
        "{params.cmd} generate --benchmark {params.bench} --base {input.base}"
        " --controlnet {input.controlnet} --variant {wildcards.prior} {params.options}"
        " --mu {wildcards.mu} --split val --shard {params.shard} --num-shards {params.num_shards}"
        " --out {output} > {log} 2>&1"


# keep_images (common.smk, benches_keeping): the same job with its images marked temp(), so they go
# once every job reading them has finished; `grid` keeps the first shard of every FID setting.
if benches_keeping("none", "grid"):

    use rule generate as generate_discarded with:
        output:
            temp(directory(
                f"{WORK}/{{bench,{'|'.join(benches_keeping('none', 'grid'))}}}/samples/{{prior}}/mu{{mu}}/{{purpose}}/{{shard}}"
            )),

    ruleorder: generate_discarded > generate


if benches_keeping("grid"):

    use rule generate as generate_kept with:
        output:
            directory(f"{WORK}/{{bench,{'|'.join(benches_keeping('grid'))}}}/samples/{{prior}}/mu{{mu}}/{{purpose,fid}}/{{shard,0000}}"),

    ruleorder: generate_kept > generate_discarded
