"""scpdiff plots: the paper's figures (Fig. 8 mu sweep, Fig. 3 oracle, Fig. 7 samples grid)."""

from __future__ import annotations

import argparse

from ._numbers import positive_int

HELP = "draw Fig. 8 (mu-sweep), Fig. 3 (oracle) or Fig. 7 (samples) with matplotlib"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("figure", choices=["mu-sweep", "oracle", "samples"], help="which figure")
    p.add_argument("--metrics", nargs="+", default=[], metavar="CSV", help="metrics CSVs (mu-sweep, oracle)")
    p.add_argument("--out", nargs="+", required=True, metavar="FILE", help="image file(s); format from the suffix")
    p.add_argument("--csv", help="also write the plotted numbers here (mu-sweep, oracle)")
    p.add_argument("--benchmark", help="benchmark name or YAML path (samples: the validation images and masks)")
    p.add_argument("--samples", nargs="+", default=[], metavar="PRIOR=DIR",
                   help="folders of generated images, one per prior, in column order (samples)")
    p.add_argument("--rows", type=positive_int, default=4, help="label maps shown (samples)")
    p.add_argument("--dpi", type=positive_int, default=150)


def run(args) -> int:
    from ..errors import InputError
    from ..reporting import plots

    if args.figure in ("mu-sweep", "oracle"):
        from ..reporting.tables import read_metrics

        if not args.metrics:
            raise InputError(f"plots {args.figure}: give --metrics CSV")
        metrics = read_metrics(args.metrics)
        if args.figure == "mu-sweep":
            data = plots.mu_sweep_data(metrics)
            fig = plots.mu_sweep_figure(data)
        else:
            data = plots.oracle_data(metrics)
            if not (data["prior"] == plots.ORACLE_PRIOR).any():
                raise InputError(f"{', '.join(args.metrics)}: no oracle prior settings to plot")
            fig = plots.oracle_figure(data)
        if args.csv:
            plots.write_csv(data, args.csv)
    else:
        if not args.benchmark or not args.samples:
            raise InputError("plots samples: give --benchmark and --samples PRIOR=DIR ...")
        from ..config.benchmark import load_benchmark
        from ..reporting.samples import load_sample_rows, parse_sample_dirs

        bench = load_benchmark(args.benchmark)
        dirs = parse_sample_dirs(args.samples)
        rows = load_sample_rows(bench, dirs, args.rows)
        fig = plots.samples_figure(rows, list(dirs))
    plots.save_figure(fig, args.out, dpi=args.dpi)
    for path in args.out:
        print(path)
    return 0
