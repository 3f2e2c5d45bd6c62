"""Stage 6: the paper's tables (1-3) and figures (3, 7, 8) under results/{bench}/, and, when
several benchmarks run, Tables 1-3 with one column group per benchmark under results/summary/."""


rule tables:
    input:
        unpack(score_inputs),
    output:
        metrics=report(
            f"{RESULTS}/{{bench}}/metrics.csv",
            caption="../report/metrics.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "all settings"},
        ),
        table1=report(
            f"{RESULTS}/{{bench}}/table1.csv",
            caption="../report/table1.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "Table 1"},
        ),
        table1_tex=f"{RESULTS}/{{bench}}/table1.tex",
        table2=report(
            f"{RESULTS}/{{bench}}/table2.csv",
            caption="../report/table2.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "Table 2"},
        ),
        table2_tex=f"{RESULTS}/{{bench}}/table2.tex",
        table3=report(
            f"{RESULTS}/{{bench}}/table3.csv",
            caption="../report/table3.rst",
            category="{bench}",
            subcategory="Tables",
            labels={"table": "Table 3"},
        ),
        table3_tex=f"{RESULTS}/{{bench}}/table3.tex",
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        scores=score_options,
        out_dir=lambda w, output: os.path.dirname(output.table1),
    log:
        log_path("tables"),
    threads: 1
    resources:
        **resources_for("report"),
    conda:
        ENV
    shell:
        "{params.cmd} tables --benchmark {params.bench} {params.scores}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule plot_mu_sweep:
    input:
        f"{RESULTS}/{{bench}}/metrics.csv",
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


rule plot_oracle:
    input:
        f"{RESULTS}/{{bench}}/metrics.csv",
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


rule summary_tables:
    input:
        lambda w: [f"{RESULTS}/{b}/metrics.csv" for b in BENCH],
    output:
        table1=report(
            f"{RESULTS}/summary/table1.csv",
            caption="../report/summary.rst",
            category="All benchmarks",
            labels={"table": "Table 1"},
        ),
        table2=report(
            f"{RESULTS}/summary/table2.csv",
            caption="../report/summary.rst",
            category="All benchmarks",
            labels={"table": "Table 2"},
        ),
        table3=report(
            f"{RESULTS}/summary/table3.csv",
            caption="../report/summary.rst",
            category="All benchmarks",
            labels={"table": "Table 3"},
        ),
        tex=expand(f"{RESULTS}/summary/table{{i}}.tex", i=(1, 2, 3)),
    params:
        cmd=SCPDIFF,
        out_dir=lambda w, output: os.path.dirname(output.table1),
    log:
        f"{WORK}/logs/summary_tables.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=0,
    conda:
        ENV
    shell:
        "{params.cmd} tables --metrics {input} --out-dir {params.out_dir} > {log} 2>&1"
