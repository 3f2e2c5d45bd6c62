#!/usr/bin/env python
"""Generation speed of SCP-Diff at SD 2.1 size: images/s, FLOPs per step, fraction of the GPU's peak.

Builds SD 2.1's UNet + ControlNet + VAE + text encoder from their configs
(:mod:`scpdiff.models.sd_configs`) with random weights -- the same FLOPs as the real models, no download --
and times the real generation path (:func:`scpdiff.sampling.sample_images`: joint prior, Eq. 6
noising at mu*T, the last mu*S DDIM steps through diffusers' ControlNet pipeline, VAE decode, uint8
images on the host) for each speed preset (:mod:`scpdiff.sampling.speed`), image size and batch size.

    # one H100, paper settings (512x512 and 1024x512, mu = 0.85, 50 DDIM steps, CFG 7.5); about
    # 20-30 min in all -- where commands are time-limited, rerun the same command: it resumes
    python tools/speed/generate.py --out results/speed/generate-$(date +%F)-h100.csv
    # CPU smoke check (seconds):
    python tools/speed/generate.py --tiny --out /tmp/generate-tiny.csv

The CSV gets one row per (speed preset, size, batch size) and is rewritten atomically after each row;
rerunning with the same ``--out`` skips the rows already measured (a killed run resumes).
FLOPs are counted once per size on the meta device with ``torch.utils.flop_counter`` (attention
through PyTorch's math kernel so that it is counted; any SDPA kernel does the same FLOPs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

# the FLOP counters live in the library (scpdiff plan uses them too)
from scpdiff.models.flops import count_flops, denoiser_step_flops, vae_decode_flops  # noqa: F401

PAPER_SECONDS_PER_IMAGE_A100 = 2.34  # paper section 5.2, "without any acceleration techniques"

# Dense (no sparsity) peak TFLOPS from NVIDIA's data sheets, by device-name pattern:
# (bf16/fp16 tensor cores, tf32 tensor cores, fp32 CUDA cores). Most specific pattern first.
PEAK_TFLOPS: list[tuple[tuple[str, ...], tuple[float, float, float]]] = [
    (("H200",), (989.4, 494.7, 66.9)),
    (("H100", "NVL"), (835.5, 417.5, 60.0)),
    (("H100", "PCIE"), (756.0, 378.0, 51.2)),
    (("H100",), (989.4, 494.7, 66.9)),  # SXM5 ("NVIDIA H100 80GB HBM3")
    (("A100",), (312.0, 156.0, 19.5)),
    (("L40S",), (362.1, 183.0, 91.6)),
]

PROFILES: dict[str, dict] = {
    "full": dict(
        model="sd21",
        sizes="512x512,512x1024",
        batch_sizes="1,8,32",
        speed=["baseline", "default", "fast"],
        steps=50,
        mu=0.85,
        guidance_scale=7.5,
        warmup=2,
        repeats=3,
        row_seconds=30.0,
        num_classes=19,
    ),
    "tiny": dict(
        model="sd21-tiny",
        sizes="64x64,64x128",
        batch_sizes="1,2",
        speed=["baseline", "default"],
        steps=4,
        mu=0.85,
        guidance_scale=7.5,
        warmup=1,
        repeats=1,
        row_seconds=5.0,
        num_classes=5,
    ),
}

KEY_COLUMNS = ("model", "speed", "height", "width", "batch_size", "ddim_steps", "mu", "guidance_scale")
COLUMNS = [
    "date_utc", "device", "device_name", "torch", "diffusers", "cuda", "cudnn", "python",
    "model", "speed", "options", "dtype", "changes_numerics", "generation_path",
    "height", "width", "ddim_steps", "mu", "denoise_steps", "guidance_scale", "cfg_factor",
    "batch_size", "warmup_batches", "timed_batches", "batch_seconds_median", "batch_seconds_min",
    "images_per_s", "s_per_image", "speedup_vs_paper_a100",
    "step_gflop", "vae_decode_gflop", "gflop_per_image", "achieved_tflops",
    "peak_tflops", "peak_basis", "fraction_of_peak", "flop_limit_s_per_image", "x_flop_limit",
    "peak_memory_gib", "status",
]


# ---------------------------------------------------------------------------------------------
# peak FLOPS


def peak_tflops(device_name: str, dtype: torch.dtype) -> tuple[float | None, str]:
    """(dense peak TFLOPS, what it is) of the GPU for ``dtype``; (None, reason) when unknown."""
    name = device_name.upper()
    for patterns, (half, tf32, fp32) in PEAK_TFLOPS:
        if all(p in name for p in patterns):
            if dtype in (torch.bfloat16, torch.float16):
                return half, f"{str(dtype).removeprefix('torch.')} tensor cores, dense"
            if torch.get_float32_matmul_precision() != "highest":
                return tf32, "tf32 tensor cores, dense"
            # fp32 matmuls on CUDA cores, but cuDNN convolutions default to TF32: fp32 is a lower bound
            return fp32, "fp32 CUDA cores (convolutions may use TF32)"
    return None, f"unknown peak for {device_name!r} (pass --peak-tflops)"


# ---------------------------------------------------------------------------------------------
# Environment and inputs


def environment(device: torch.device) -> dict:
    import diffusers

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda or "",
        "cudnn": str(torch.backends.cudnn.version() or "") if device.type == "cuda" else "",
        "python": platform.python_version(),
    }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"512x512,512x1024"`` -> [(512, 512), (512, 1024)] as (height, width)."""
    sizes = []
    for item in text.split(","):
        try:
            h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bad size {item!r}: expected HEIGHTxWIDTH, e.g. 512x1024") from None
        sizes.append((h, w))
    return sizes


def block_masks(batch: int, height: int, width: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Label maps of random 32x32-pixel blocks (a layout, so each prior token varies by class)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, num_classes, (batch, math.ceil(height / 32), math.ceil(width / 32)), generator=g)
    return cells.repeat_interleave(32, 1).repeat_interleave(32, 2)[:, :height, :width].contiguous()


def fitted_joint_prior(configs, height: int, width: int, num_classes: int):
    """A joint prior (Eq. 8) fitted on random latents: sampling costs what a real one does."""
    from scpdiff import priors

    shape = configs.latent_shape(height, width)
    prior = priors.create("joint", num_classes=num_classes, latent_shape=shape, min_count=1)
    g = torch.Generator().manual_seed(0)
    masks = block_masks(4, height, width, num_classes)
    prior.update(torch.randn(4, *shape, generator=g), masks)
    return prior


def generation_fn(pipe, configs, args, height: int, width: int, batch: int) -> tuple[Callable[[], object], str]:
    """One batch of generation as SCP-Diff runs it; the path name goes into the CSV."""
    masks = block_masks(batch, height, width, args.num_classes, seed=1)
    palette = torch.randint(0, 256, (args.num_classes, 3), generator=torch.Generator().manual_seed(2)).numpy()
    try:
        from scpdiff.sampling import image_generators, sample_images
    except ImportError:
        sample_images = None
    if sample_images is not None:
        prior = fitted_joint_prior(configs, height, width, args.num_classes)

        def run():
            gens = image_generators("speed", range(batch))
            return sample_images(
                pipe, prior, masks, palette=palette, mu=args.mu, num_steps=args.steps,
                prompt=args.prompt, guidance_scale=args.guidance_scale, generators=gens,
            )

        return run, "scpdiff.sampling.sample_images"

    # Without scpdiff.sampling: the same pipeline call with as many denoising steps.
    from scpdiff.models.conditioning import encode_mask

    condition = encode_mask(masks, palette).to(pipe.device, pipe.unet.dtype)

    def run_pipeline():
        out = pipe(
            prompt=[args.prompt] * batch, image=condition, height=height, width=width,
            num_inference_steps=denoise_steps(args.mu, args.steps), guidance_scale=args.guidance_scale,
            output_type="np",
        )
        return out.images

    return run_pipeline, "diffusers StableDiffusionControlNetPipeline"


def denoise_steps(mu: float, steps: int) -> int:
    try:
        from scpdiff.sampling import denoising_steps
    except ImportError:
        return max(1, min(steps, math.floor(mu * steps + 0.5 + 1e-9)))
    return denoising_steps(mu, steps)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(run: Callable[[], object], device: torch.device, warmup: int, repeats: int, row_seconds: float) -> list[float]:
    """Seconds per batch of ``repeats`` timed runs after ``warmup`` (compilation, CUDA-graph capture).

    Stops early once the timed runs exceed ``row_seconds`` (at least one is always timed).
    """
    for _ in range(warmup):
        run()
    synchronize(device)
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < row_seconds):
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------------------------------------
# CSV


def read_done(path: Path) -> tuple[list[dict], set[tuple]]:
    import pandas as pd

    if not path.is_file():
        return [], set()
    old = pd.read_csv(path, keep_default_na=False)
    rows = old.to_dict("records")
    done = {row_key(r) for r in rows if r.get("status") == "ok"}
    return [r for r in rows if r.get("status") == "ok"], done


def row_key(row: dict) -> tuple:
    return tuple(str(row[k]) if not isinstance(row[k], float) else f"{row[k]:g}" for k in KEY_COLUMNS)


def write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    from scpdiff.utils.files import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp, index=False)


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="SD 2.1's layout at toy width on the CPU (smoke check)")
    p.add_argument("--model", help="sd_configs name: sd21 (default), sd21-base, sd21-tiny")
    p.add_argument("--benchmark", help="take protocol ddim_steps and guidance_scale, mu.table, resolution and prompt from this benchmark config")
    p.add_argument("--sizes", help="HEIGHTxWIDTH list (default 512x512,512x1024: ADE20K and Cityscapes)")
    p.add_argument("--batch-sizes", help="images per batch (default 1,8,32)")
    p.add_argument("--speed", action="append", help="a speed setting: a preset or comma-joined options "
                   "(repeat for several; default: baseline, default, fast; see scpdiff.sampling.speed)")
    p.add_argument("--steps", type=int, help="DDIM steps S (default 50)")
    p.add_argument("--mu", type=float, help="fraction of the DDIM steps run (default 0.85)")
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance scale (default 7.5; 1 = no CFG pass)")
    p.add_argument("--prompt", default="City road scenes")
    p.add_argument("--warmup", type=int, help="untimed batches first (compilation, CUDA graphs)")
    p.add_argument("--repeats", type=int, help="timed batches per row (at most)")
    p.add_argument("--row-seconds", type=float, help="stop timing a row after this many seconds")
    p.add_argument("--num-classes", type=int, help="label classes of the masks and prior (default 19)")
    p.add_argument("--device", help="cuda (default when available) or cpu")
    p.add_argument("--peak-tflops", type=float, help="the device's peak for the dtype, when not in the table")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (tests: eager)")
    p.add_argument("--out", type=Path, help="CSV path (default results/speed/generate-DATE-DEVICE.csv)")
    return p


def resolve_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    profile = PROFILES["tiny" if args.tiny else "full"]
    for key, value in profile.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.benchmark:
        from scpdiff.config.benchmark import load_benchmark

        bench = load_benchmark(args.benchmark)
        args.steps = int(bench.protocol["ddim_steps"])
        args.guidance_scale = float(bench.protocol["guidance_scale"])
        args.mu = float(bench["mu"]["table"])
        args.prompt = bench["prompt"]
        h, w = bench.resolution
        args.sizes = f"{h}x{w}"
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    return args


def flop_table(configs, sizes, n_steps: int, cfg_factor: int) -> dict[tuple[int, int], dict]:
    """Per size: GFLOP of one UNet+ControlNet step (one latent), of one VAE decode, and per image."""
    table = {}
    for h, w in sizes:
        step, vae = denoiser_step_flops(configs, h, w), vae_decode_flops(configs, h, w)
        per_image = n_steps * cfg_factor * step + vae
        table[h, w] = dict(step_gflop=step / 1e9, vae_decode_gflop=vae / 1e9, gflop_per_image=per_image / 1e9)
        print(f"{h}x{w}: one UNet+ControlNet step {step / 1e9:.4g} GFLOP/image, VAE decode {vae / 1e9:.4g} GFLOP, "
              f"{per_image / 1e12:.4g} TFLOP/image at {n_steps} steps x CFG {cfg_factor}", flush=True)
    return table


def measure(run: Callable[[], object], device: torch.device, args, batch: int, gflop_per_image: float, peak) -> dict:
    """Time one row; the speed, FLOP-rate and peak-fraction columns."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = time_batches(run, device, args.warmup, args.repeats, args.row_seconds)
    median = statistics.median(times)
    s_per_image = median / batch
    achieved = gflop_per_image / s_per_image / 1e3
    row = dict(
        timed_batches=len(times), batch_seconds_median=median, batch_seconds_min=min(times),
        images_per_s=1.0 / s_per_image, s_per_image=s_per_image,
        speedup_vs_paper_a100=PAPER_SECONDS_PER_IMAGE_A100 / s_per_image, achieved_tflops=achieved,
        peak_memory_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        status="ok",
    )
    if peak:
        limit = gflop_per_image / (peak * 1e3)
        row.update(fraction_of_peak=achieved / peak, flop_limit_s_per_image=limit, x_flop_limit=s_per_image / limit)
    return row


def run_setting(speed: str, pending, configs, device, env, args, flops, common: dict, emit: Callable[[dict], None]) -> None:
    """Build a fresh pipeline, apply the speed ``speed`` and measure the ``pending`` (h, w, batch) rows."""
    from scpdiff.models import sd_configs
    from scpdiff.sampling import speed as acceleration

    options = acceleration.parse_options(speed)
    # tf32 is process-wide: restore the switches afterwards so the next setting is unaffected
    precision = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    pipe = sd_configs.build_pipeline(configs, device=device)
    acceleration.apply(pipe, options, compile_backend=args.compile_backend)
    dtype = pipe.unet.dtype
    if args.peak_tflops:
        peak, basis = args.peak_tflops, "given"
    else:
        peak, basis = peak_tflops(env["device_name"], dtype) if device.type == "cuda" else (None, "cpu")
    out_of_memory: set[tuple[int, int]] = set()
    try:
        for h, w, batch in pending:
            if (h, w) in out_of_memory:
                continue  # a larger batch of a size that did not fit
            run, path = generation_fn(pipe, configs, args, h, w, batch)
            row = dict(env, **common, speed=speed, options=",".join(options), dtype=str(dtype).removeprefix("torch."),
                       changes_numerics=acceleration.changes_numerics(options), generation_path=path,
                       height=h, width=w, batch_size=batch, peak_tflops=peak, peak_basis=basis, **flops[h, w])
            try:
                row.update(measure(run, device, args, batch, flops[h, w]["gflop_per_image"], peak))
            except torch.OutOfMemoryError:
                row["status"] = "oom"
                out_of_memory.add((h, w))
                torch.cuda.empty_cache()
            emit(row)
    finally:
        del pipe
        torch._dynamo.reset()  # drop this setting's compiled graphs (and the weights they hold)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        torch.set_float32_matmul_precision(precision[0])
        torch.backends.cudnn.allow_tf32 = precision[1]


def print_row(row: dict) -> None:
    where = f"{row['speed']:>10} {row['height']}x{row['width']} batch {row['batch_size']:>3}"
    if row["status"] != "ok":
        print(f"{where}: {row['status']}", flush=True)
        return
    peak = f" = {row['fraction_of_peak']:.0%} of peak" if row.get("fraction_of_peak") else ""
    print(f"{where}: {row['images_per_s']:8.3f} images/s, {row['s_per_image']:.3f} s/image "
          f"({row['speedup_vs_paper_a100']:.3g}x the paper's A100), {row['achieved_tflops']:.3g} TFLOPS{peak}", flush=True)


def main(argv: list[str] | None = None) -> int:
    from scpdiff.models import sd_configs
    from scpdiff.sampling import speed as acceleration

    args = resolve_args(argv)
    device = torch.device(args.device)
    configs = sd_configs.get_configs(args.model)
    sizes = parse_sizes(args.sizes)
    batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    speeds = [s.strip() for s in args.speed]
    for speed in speeds:
        acceleration.parse_options(speed)  # fail early on a typo
    env = environment(device)
    out = args.out or Path("results/speed") / f"generate-{env['date_utc'][:10]}-{env['device_name'].replace(' ', '_')}.csv"
    rows, done = read_done(out)

    n_steps = denoise_steps(args.mu, args.steps)
    cfg_factor = 2 if args.guidance_scale > 1.0 else 1
    flops = flop_table(configs, sizes, n_steps, cfg_factor)
    common = dict(model=configs.name, ddim_steps=args.steps, mu=args.mu, denoise_steps=n_steps,
                  guidance_scale=args.guidance_scale, cfg_factor=cfg_factor, warmup_batches=args.warmup)

    def emit(row: dict) -> None:
        rows.append(row)
        write_csv(out, rows)  # after every row: a killed run keeps what it measured
        print_row(row)

    for speed in speeds:
        pending = [(h, w, b) for h, w in sizes for b in batch_sizes
                   if row_key(dict(common, speed=speed, height=h, width=w, batch_size=b)) not in done]
        if pending:
            run_setting(speed, pending, configs, device, env, args, flops, common, emit)
    write_csv(out, rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
