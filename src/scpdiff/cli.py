"""The ``scpdiff`` command line: one sub-command per workflow step.

Each sub-command lives in its own module under :mod:`scpdiff.commands` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their command is
run, so ``scpdiff --help`` stays fast and a command's heavy imports do not slow the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ScpdiffError

# command name -> module under scpdiff.commands
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "prepare-data": "prepare_data",
    "train-vae": "train_vae",
    "train-base": "train_base",
    "train-controlnet": "train_controlnet",
    "train-segmenter": "train_segmenter",
    "import-controlnet": "import_controlnet",
    "import-priors": "import_priors",
    "encode-latents": "encode_latents",
    "fit-prior": "fit_prior",
    "merge-priors": "merge_priors",
    "scale-prior": "scale_prior",
    "generate": "generate",
    "weights": "weights",
    "ref-stats": "ref_stats",
    "reference-images": "reference_images",
    "score": "score",
    "merge-scores": "merge_scores",
    "collect-metrics": "collect_metrics",
    "tables": "tables",
    "plots": "plots",
    "user-study": "user_study",
    "validate-config": "validate_config",
    "protocol": "protocol",
    "protocol-ablation": "protocol_ablation",
    "install-profiles": "install_profiles",
    "plan": "plan",
    "resume": "resume",
}


def _load(name: str):
    return importlib.import_module(f"scpdiff.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scpdiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        mod = _load(name)
        p = sub.add_parser(name, help=getattr(mod, "HELP", None), description=getattr(mod, "HELP", None))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # a job of a local Snakemake run: a fork of the warm server, when there is one
        from .utils.forkserver import delegate

        code = delegate(sys.argv[1:])
        if code is not None:
            return code
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    # a job of a Snakemake run stops when that run is gone (kill -9), instead of running on orphaned
    from .utils.workflow_watch import watch_workflow

    watch_workflow()
    try:
        # plugin modules named by the workflow config (register prior variants etc.)
        from .config.workflow import import_plugins_from_env

        import_plugins_from_env()
        return int(args._run(args) or 0)
    except ScpdiffError as exc:
        print(f"scpdiff {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
