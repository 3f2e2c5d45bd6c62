"""``scpdiff import-priors``: the authors' released statistics as scpdiff prior files."""

from __future__ import annotations

HELP = "import the official SCP-Diff statistics (noise_prior.py's .npy files) as official_* prior files"


def add_arguments(parser) -> None:
    parser.add_argument("stats_dir", help="folder with {name}_spatial_mean_std.npy, {name}_categorical_mean_std.npy, {name}_spatial_class_mean_std.npy")
    parser.add_argument("--name", required=True, help="the statistics' save name (noise_prior.py --save_name)")
    parser.add_argument("--benchmark", required=True, help="benchmark name or YAML path (classes, latent shape, ignore label)")
    parser.add_argument("--out", required=True, help="output folder: official_spatial/categorical/joint.safetensors")
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading the pickled .npy dicts (runs code from the files)")


def run(args) -> int:
    from ..config.benchmark import load_benchmark
    from ..priors.official import write_official_priors

    for path in write_official_priors(args.stats_dir, args.name, load_benchmark(args.benchmark), args.out, trust_pickle=args.trust_pickle):
        print(path)
    return 0
