"""Stage 1: the dataset index (the toy benchmark generates its dataset first)."""


rule prepare_data:
    output:
        f"{WORK}/{{bench}}/data/index.json",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        settings=digest("dataset", "resolution"),
    log:
        log_path("prepare_data"),
    threads: threads_for("prepare_data")
    resources:
        **resources_for("prepare_data"),
    conda:
        ENV
    shell:
        "{params.cmd} prepare-data --benchmark {params.bench} --workers {threads} --out {output} > {log} 2>&1"
