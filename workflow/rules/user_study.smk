"""Table 4 (paper section 5.5): the user study's folder, built from the workflow's samples, and its
table once answers exist.

    snakemake user_study                    # work/{bench}/user_study/ for every benchmark
    scpdiff user-study invite work/toy/user_study --count 20
    scpdiff user-study serve work/toy/user_study
    snakemake                               # now also results/{bench}/table4/ and results/table4.*

The study is not part of `all`: people rank it between two runs. Its manifest is protected, so a
later change to the samples can never rebuild a study that participants are answering (the build
command also refuses a folder with an answers database); delete the folder to start a new study.
Settings: the workflow config's `user_study` block (workflow/schemas/config.schema.yaml).
"""


rule user_study_build:
    input:
        unpack(user_study_inputs),
    output:
        protected(f"{WORK}/{{bench}}/user_study/manifest.csv"),
    params:
        cmd=SCPDIFF,
        bench=bench_yaml,
        options=user_study_options,
        # work_dir/{bench}/user_study/manifest.csv -> work_dir (where the samples are)
        work=lambda w, output: os.path.dirname(os.path.dirname(os.path.dirname(output[0]))),
        out=lambda w, output: os.path.dirname(output[0]),
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
        study=lambda w, input: os.path.dirname(input.answers),
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


# Table 4 over every benchmark whose study has answers, from their table4 folders.
rule table4_study:
    input:
        lambda w: [f"{RESULTS}/{b}/table4/table4.csv" for b in benches_with_answers()],
    output:
        csv=report(
            f"{RESULTS}/table4.csv",
            caption="../report/table4.rst",
            category="All benchmarks",
            labels={"table": "Table 4"},
        ),
        tex=f"{RESULTS}/table4.tex",
    params:
        cmd=SCPDIFF,
        tables=lambda w, input: " ".join(os.path.dirname(p) for p in input),
        out_dir=lambda w, output: os.path.dirname(output.csv) or ".",
    log:
        f"{WORK}/logs/table4.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
        gpu=0,
    conda:
        ENV
    shell:
        "{params.cmd} user-study combine {params.tables} --out-dir {params.out_dir} > {log} 2>&1"
