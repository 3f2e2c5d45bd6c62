"""Stage 6: the paper's tables (1-3) and figures (3, 7, 8) under results/{bench}/, and Tables 1-3
and the mu sweep over every configured benchmark (a column group per benchmark, as the paper
prints them) as results/table{1,2,3}.{csv,tex} and results/mu_sweep.*.

Each table or figure reads a metrics CSV holding exactly the settings it shows
(work/{bench}/metrics/{product}.csv), so `snakemake results/table1.tex` generates and scores only
the priors at the benchmark's mu for tables."""


rule metrics:
    input:
        unpack(score_inputs("all")),
    output:
        report(
            f"{RESULTS}/{{bench}}/metrics.csv",
            caption="../report/metrics.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "all settings"},
        ),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        scores=score_options("all"),
    log:
        log_path("metrics"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} collect-metrics --benchmark {params.bench} {params.scores} --out {output} > {log} 2>&1"


rule collect_metrics:
    input:
        unpack(score_inputs(None)),
    output:
        f"{WORK}/{{bench}}/metrics/{{product}}.csv",
    wildcard_constraints:
        product="|".join(REPORT_PRODUCTS),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        scores=score_options(None),
    log:
        log_path("collect_metrics", "_{product}"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} collect-metrics --benchmark {params.bench} {params.scores} --out {output} > {log} 2>&1"


rule benchmark_table:
    input:
        lambda w: product_metrics(w.bench, f"table{w.table}"),
    output:
        csv=report(
            f"{RESULTS}/{{bench}}/table{{table}}.csv",
            caption="../report/table.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "Table {table}"},
        ),
        tex=f"{RESULTS}/{{bench}}/table{{table}}.tex",
    wildcard_constraints:
        table="|".join(map(str, TABLES)),
    params:
        cmd=SCPDIFF,
        out_dir=lambda w, output: os.path.dirname(output.csv),
    log:
        log_path("benchmark_table", "{table}"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} tables --metrics {input} --table {wildcards.table} --out-dir {params.out_dir} > {log} 2>&1"


rule table:
    input:
        lambda w: [product_metrics(b, f"table{w.table}") for b in BENCH],
    output:
        csv=report(
            f"{RESULTS}/table{{table}}.csv",
            caption="../report/table.rst",
            category="All benchmarks",
            labels={"table": "Table {table}"},
        ),
        tex=f"{RESULTS}/table{{table}}.tex",
    wildcard_constraints:
        table="|".join(map(str, TABLES)),
    params:
        cmd=SCPDIFF,
        out_dir=lambda w, output: os.path.dirname(output.csv) or ".",
    log:
        f"{WORK}/logs/table{{table}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=0,
    conda:
        ENV
    shell:
        "{params.cmd} tables --metrics {input} --table {wildcards.table} --out-dir {params.out_dir} > {log} 2>&1"


rule plot_mu_sweep:
    input:
        lambda w: product_metrics(w.bench, "mu_sweep"),
    output:
        png=report(
            f"{RESULTS}/{{bench}}/mu_sweep.png",
            caption="../report/mu_sweep.rst",
            category="{bench}",
            subcategory="Figures",
            labels={"figure": "Fig. 8: mu sweep"},
        ),
        pdf=f"{RESULTS}/{{bench}}/mu_sweep.pdf",
        csv=f"{RESULTS}/{{bench}}/mu_sweep.csv",
    params:
        cmd=SCPDIFF,
    log:
        log_path("plot_mu_sweep"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} plots mu-sweep --metrics {input} --out {output.png} {output.pdf}"
        " --csv {output.csv} > {log} 2>&1"


rule mu_sweep:
    input:
        lambda w: [product_metrics(b, "mu_sweep") for b in BENCH],
    output:
        png=report(
            f"{RESULTS}/mu_sweep.png",
            caption="../report/mu_sweep.rst",
            category="All benchmarks",
            labels={"figure": "Fig. 8: mu sweep"},
        ),
        pdf=f"{RESULTS}/mu_sweep.pdf",
        csv=f"{RESULTS}/mu_sweep.csv",
    params:
        cmd=SCPDIFF,
    log:
        f"{WORK}/logs/mu_sweep.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=0,
    conda:
        ENV
    shell:
        "{params.cmd} plots mu-sweep --metrics {input} --out {output.png} {output.pdf}"
        " --csv {output.csv} > {log} 2>&1"


rule plot_oracle:
    input:
        lambda w: product_metrics(w.bench, "oracle"),
    output:
        png=report(
            f"{RESULTS}/{{bench}}/oracle.png",
            caption="../report/oracle.rst",
            category="{bench}",
            subcategory="Figures",
            labels={"figure": "Fig. 3: oracle prior"},
        ),
        csv=f"{RESULTS}/{{bench}}/oracle.csv",
    params:
        cmd=SCPDIFF,
    log:
        log_path("plot_oracle"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} plots oracle --metrics {input} --out {output.png} --csv {output.csv}"
        " > {log} 2>&1"


rule plot_samples:
    input:
        unpack(samples_grid_inputs),
    output:
        report(
            f"{RESULTS}/{{bench}}/samples.png",
            caption="../report/samples.rst",
            category="{bench}",
            subcategory="Figures",
            labels={"figure": "Fig. 7: samples"},
        ),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        samples=lambda w, input: " ".join(
            f"{p}={d}" for p, d in zip(table_priors(w.bench), input.shards)
        ),
        rows=config["samples_grid_rows"],
    log:
        log_path("plot_samples"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} plots samples --benchmark {params.bench} --samples {params.samples}"
        " --rows {params.rows} --out {output} > {log} 2>&1"
