"""``scpdiff import-controlnet``: an original ControlNet checkpoint (the authors' release) as diffusers folders."""

from __future__ import annotations

HELP = "convert an original ControlNet/latent-diffusion checkpoint (models/cldm_v21.yaml layout) into diffusers folders"


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="the released .ckpt or .safetensors")
    parser.add_argument("--base", required=True, help="local Stable Diffusion 2.1-base folder (tokenizer, scheduler, text-encoder config)")
    parser.add_argument("--out", required=True, help="output folder (a diffusers SD folder with controlnet/)")
    parser.add_argument("--original-config", default=None, help="the checkpoint's YAML (default: models/cldm_v21.yaml's architecture)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled .ckpt (runs code from the file)")


def run(args) -> int:
    from ..models.ldm_import import import_controlnet

    import_controlnet(args.checkpoint, args.base, args.out, original_config=args.original_config, trust_pickle=args.trust_pickle)
    return 0
