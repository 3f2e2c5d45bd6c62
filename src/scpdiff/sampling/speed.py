"""Named speed options for a diffusers ControlNet pipeline (the generation step of SCP-Diff).

Each option is one of the field's standard inference speed-ups, applied through diffusers' and
PyTorch's own switches; none is a new approximation. Options that change numerics beyond float
re-association (lower precision) are marked ``changes_numerics`` and are never in ``default``.

    pipe = scpdiff.models.load_pipeline(base, controlnet, device="cuda")
    scpdiff.sampling.speed.apply(pipe, "fast")              # a preset
    scpdiff.sampling.speed.apply(pipe, "bf16,sdpa,compile") # or options by name

Options are applied in a fixed order (precision, attention, layout, VAE, compilation) whatever
order they are given in, because e.g. QKV fusion must see the final dtype and compilation must
see the final modules. Classifier-free guidance is always batched (diffusers runs the conditional
and unconditional halves in one UNet/ControlNet call), so it needs no option.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class SpeedOption:
    """One named speed-up: what it does, whether it changes numerics, and how to apply it."""

    name: str
    summary: str
    changes_numerics: bool
    apply: Callable[["_Context"], None]


@dataclass
class _Context:
    pipe: object
    compile_backend: str


def _denoisers(pipe) -> list[torch.nn.Module]:
    """The modules run at every denoising step: the UNet and the ControlNet(s)."""
    nets = [pipe.unet]
    controlnet = getattr(pipe, "controlnet", None)
    if controlnet is not None:
        # MultiControlNetModel holds its nets in .nets; a single ControlNetModel is itself the net
        nets.extend(getattr(controlnet, "nets", [controlnet]))
    return nets


def _attention_modules(pipe) -> list[torch.nn.Module]:
    return [m for m in _denoisers(pipe) + [pipe.vae] if hasattr(m, "set_attn_processor")]


def _cast(dtype: torch.dtype) -> Callable[[_Context], None]:
    def run(ctx: _Context) -> None:
        ctx.pipe.to(dtype=dtype)

    return run


def _tf32(ctx: _Context) -> None:
    # A process-wide switch: fp32 matmuls (and convolutions, cuDNN's default) run on TF32 tensor cores.
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def _set_processor(factory: Callable[[], object]) -> Callable[[_Context], None]:
    def run(ctx: _Context) -> None:
        for module in _attention_modules(ctx.pipe):
            module.set_attn_processor(factory())

    return run


def _sdpa_processor():
    from diffusers.models.attention_processor import AttnProcessor2_0

    return AttnProcessor2_0()


def _classic_processor():
    from diffusers.models.attention_processor import AttnProcessor

    return AttnProcessor()


def _fused_qkv(ctx: _Context) -> None:
    from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0

    # What UNet2DConditionModel.fuse_qkv_projections does, done here for every module because
    # ControlNetModel's inherited fuse_qkv_projections skips the classic Attention blocks.
    for module in _attention_modules(ctx.pipe):
        for sub in module.modules():
            if isinstance(sub, Attention):
                sub.fuse_projections(fuse=True)
        module.set_attn_processor(FusedAttnProcessor2_0())


def _channels_last(ctx: _Context) -> None:
    for module in _denoisers(ctx.pipe) + [ctx.pipe.vae]:
        module.to(memory_format=torch.channels_last)


def _batched_vae(ctx: _Context) -> None:
    # The whole batch is decoded in one call (the default; undoes slicing/tiling if enabled).
    ctx.pipe.vae.disable_slicing()
    ctx.pipe.vae.disable_tiling()


def _sliced_vae(ctx: _Context) -> None:
    ctx.pipe.vae.enable_slicing()


def _compile(mode: str | None) -> Callable[[_Context], None]:
    def run(ctx: _Context) -> None:
        # Module.compile keeps the module's class, so pipelines and callers see the same objects.
        # Static shapes: one graph per batch size and resolution, compiled on first use.
        for module in _denoisers(ctx.pipe):
            module.compile(backend=ctx.compile_backend, mode=mode, fullgraph=True, dynamic=False)

    return run


def _compile_vae(ctx: _Context) -> None:
    ctx.pipe.vae.decoder.compile(backend=ctx.compile_backend, dynamic=False)


# Registry order is application order.
OPTIONS: dict[str, SpeedOption] = {
    o.name: o
    for o in [
        SpeedOption("bf16", "cast all components to bfloat16", True, _cast(torch.bfloat16)),
        SpeedOption("fp16", "cast all components to float16", True, _cast(torch.float16)),
        SpeedOption("tf32", "allow TF32 tensor cores for float32 matmuls/convolutions (process-wide)", True, _tf32),
        SpeedOption(
            "sdpa", "attention through torch scaled_dot_product_attention (flash/memory-efficient kernels)", False,
            _set_processor(_sdpa_processor),
        ),
        SpeedOption(
            "classic-attention", "explicit softmax(QK^T)V attention (the pre-PyTorch-2 path; a baseline)", False,
            _set_processor(_classic_processor),
        ),
        SpeedOption("fused-qkv", "one matmul for the Q, K, V projections of every attention block", False, _fused_qkv),
        SpeedOption("channels-last", "NHWC memory format for UNet, ControlNet and VAE convolutions", False, _channels_last),
        SpeedOption("batched-vae", "decode the whole batch in one VAE call (no slicing or tiling)", False, _batched_vae),
        SpeedOption("sliced-vae", "decode one image at a time (saves memory, slower)", False, _sliced_vae),
        SpeedOption("compile", "torch.compile the UNet and ControlNet (Inductor, default mode)", False, _compile(None)),
        SpeedOption(
            "compile-max", "torch.compile the UNet and ControlNet with max-autotune (no CUDA graphs)", False,
            _compile("max-autotune-no-cudagraphs"),
        ),
        SpeedOption(
            "cuda-graphs", "torch.compile the UNet and ControlNet in reduce-overhead mode (CUDA graphs)", False,
            _compile("reduce-overhead"),
        ),
        SpeedOption("compile-vae", "torch.compile the VAE decoder", False, _compile_vae),
    ]
}

# At most one option of each group may be chosen.
EXCLUSIVE: tuple[frozenset[str], ...] = (
    frozenset({"bf16", "fp16"}),
    frozenset({"sdpa", "classic-attention"}),
    frozenset({"batched-vae", "sliced-vae"}),
    frozenset({"compile", "compile-max", "cuda-graphs"}),
    frozenset({"classic-attention", "fused-qkv"}),  # fused QKV runs through SDPA
)

PRESETS: dict[str, tuple[str, ...]] = {
    # the pipeline exactly as loaded
    "none": (),
    # the paper's "without any acceleration techniques" reference point (fp32, explicit attention)
    "baseline": ("classic-attention",),
    # exact speed-ups only (default for `scpdiff generate`)
    "default": ("sdpa", "batched-vae"),
    "fast": ("bf16", "sdpa", "fused-qkv", "channels-last", "batched-vae", "compile"),
    "fastest": ("bf16", "sdpa", "fused-qkv", "channels-last", "batched-vae", "cuda-graphs", "compile-vae"),
}

DEFAULT = "default"


def parse_options(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """Options named by ``spec`` (comma-separated names or presets), in application order.

    Raises :class:`ConfigError` for an unknown name or two options that exclude each other.
    """
    if spec is None:
        spec = DEFAULT
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: set[str] = set()
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item in PRESETS:
            chosen.update(PRESETS[item])
        elif item in OPTIONS:
            chosen.add(item)
        else:
            raise ConfigError(
                f"unknown speed option {item!r}; options: {', '.join(OPTIONS)}; presets: {', '.join(PRESETS)}"
            )
    for group in EXCLUSIVE:
        clash = sorted(chosen & group)
        if len(clash) > 1:
            raise ConfigError(f"speed options {' and '.join(clash)} exclude each other")
    return tuple(name for name in OPTIONS if name in chosen)


def changes_numerics(options: Iterable[str]) -> bool:
    """Whether any of ``options`` changes results beyond float re-association (e.g. bf16)."""
    return any(OPTIONS[name].changes_numerics for name in options)


def apply(pipe, options: str | Iterable[str] | None = DEFAULT, compile_backend: str = "inductor"):
    """Apply the speed ``options`` to ``pipe`` in place and return it.

    ``pipe`` is a diffusers Stable Diffusion (ControlNet) pipeline, e.g. the one
    :func:`scpdiff.models.load_pipeline` returns. ``compile_backend`` is passed to torch.compile
    (tests use ``"eager"`` to check the wiring without compiling kernels).
    """
    ctx = _Context(pipe=pipe, compile_backend=compile_backend)
    for name in parse_options(options):
        OPTIONS[name].apply(ctx)
    return pipe


def describe() -> str:
    """A help text listing the options and presets."""
    lines = [f"  {o.name:<18} {o.summary}{' [changes numerics]' if o.changes_numerics else ''}" for o in OPTIONS.values()]
    lines += [f"  preset {name:<11} {','.join(opts) or '(nothing)'}" for name, opts in PRESETS.items()]
    return "\n".join(lines)


def add_argument(parser: argparse.ArgumentParser, default: str = DEFAULT) -> None:
    """Add ``--speed OPTIONS`` to a command (validated when parsed)."""

    def checked(value: str) -> str:
        try:
            parse_options(value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parser.add_argument(
        "--speed",
        type=checked,
        default=default,
        metavar="OPTIONS",
        help=f"comma-separated speed options or presets (default: {default}); see docs/speed.md",
    )
