"""Per-stage counts of one benchmark: jobs, images, model evaluations, FLOPs, GPU-hours, disk.

The jobs and settings are the workflow's own: :mod:`scpdiff.config.settings` enumerates the
generation settings and shards for the ``Snakefile`` and for this plan alike, and the number of
DDIM steps run for each (prior, mu) is :func:`scpdiff.sampling.schedule.start_plan` under the
benchmark's protocol (its ``ddim_steps``, ``start_rule`` and ``normal_prior_start``; docs/protocol.md),
the function generation calls. Stated assumptions (also in the CSV's ``note`` column):

* classifier-free guidance evaluates the UNet + ControlNet on two latents per step when
  ``guidance_scale > 1`` (diffusers' ``do_classifier_free_guidance``, which the generation pipeline
  uses), one otherwise; the text encoder (once per batch) and the scheduler are not counted;
* a training step costs 3x the forward FLOPs (backward = 2x forward) per sample, plus a VAE encode
  per sample (once per training image when ``cache_latents``);
* Inception passes use the stated per-pass FLOPs of :mod:`.model_costs`; segmenter FLOPs are
  not counted (passes are: the protocol's test scales, each scale one pass);
* PNG size: ``png_bytes_per_pixel`` (default 1.4, i.e. ~47% of the 3 raw bytes of a natural RGB
  image; the issue's "1.5 TB for 2.1 M 1024x512 images" is 1.36), latents float32 ``[4, h, w]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..config import settings
from ..priors import get_prior_class
from ..priors.for_benchmark import reference_latent_set
from ..sampling.schedule import start_plan
from ..utils.draws import quarter_of_split
from .model_costs import ModelCosts
from .throughput import ScoringRates, Throughput

PNG_BYTES_PER_PIXEL = 1.4
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward (2x forward)

# Validation label maps of the real datasets (OASIS protocol; paper section 5.1), used when the
# benchmark does not state dataset.num_val (the toy ones do).
VAL_MAPS = {"cityscapes": 500, "ade20k": 2000, "cocostuff": 5000}
# train images of the real datasets (the official joint prior's reference is a quarter of them)
TRAIN_IMAGES = {"cityscapes": 2975, "ade20k": 20210, "cocostuff": 118287}


def segmenter_passes_per_image(kind: str) -> int:
    """Forward passes of the protocol segmenter per image: one per test scale."""
    from ..segmenters import deeplabv2, drn, upernet

    scales = {
        "toy": 1,
        "drn_d_105": 1 + len(drn.MS_SCALES),  # scale 1 plus fyu/drn's MS_SCALES
        "deeplabv2": 1 + len(deeplabv2.MSC_SCALES),  # the full image plus the MSC scales
        "upernet_101": len(upernet.IMG_SIZES),
        "mmseg_upernet_r101": len(upernet.IMG_SIZES),
    }
    return scales.get(kind, 1)


@dataclass
class StageCost:
    """One row of the plan."""

    benchmark: str
    stage: str
    jobs: int = 0
    images: int = 0
    denoiser_evals: int = 0  # UNet + ControlNet evaluations of one latent
    segmenter_passes: int = 0
    inception_passes: int = 0
    flops: float = 0.0
    gpu_hours: float = 0.0
    disk_bytes: float = 0.0
    device: str = "gpu"
    note: str = field(default="")

    def as_dict(self) -> dict:
        return asdict(self)


def num_val_maps(bench) -> int:
    return int(bench["dataset"].get("num_val") or VAL_MAPS.get(bench["dataset"]["kind"], 0))


def guidance_factor(bench) -> int:
    """Latents evaluated per step: 2 with classifier-free guidance (the protocol's guidance_scale > 1), else 1."""
    return 2 if float(bench.protocol["guidance_scale"]) > 1.0 else 1


def steps_run(bench, prior: str, mu) -> int:
    """DDIM steps run for ``prior`` at ``mu`` under the benchmark's protocol (start rule, the
    normal prior's own start): :func:`scpdiff.sampling.schedule.start_plan`, as generation runs them."""
    protocol = bench.protocol
    return start_plan(float(mu), int(protocol["ddim_steps"]), protocol["start_rule"], normal=prior == "normal",
                      normal_start=protocol["normal_prior_start"]).steps


def image_flops(bench, costs: ModelCosts, mu, prior: str = "joint") -> float:
    """FLOPs of one generated image of ``prior`` at ``mu``: the denoising steps run, guidance, one VAE decode."""
    return steps_run(bench, prior, mu) * guidance_factor(bench) * costs.denoiser_step + costs.vae_decode


def _generation(bench, costs: ModelCosts, png_bytes: float) -> StageCost:
    steps = int(bench.protocol["ddim_steps"])
    cfg = guidance_factor(bench)
    height, width = bench.resolution
    row = StageCost(bench.name, "generate")
    # the settings generated (the normal prior once under the controlnet start: settings.sample_mu)
    purposes = [("fid", settings.generated_settings(bench, settings.fid_settings(bench))),
                ("diversity", settings.generated_settings(bench, settings.diversity_settings(bench)))]
    maps = num_val_maps(bench)
    for purpose, pairs in purposes:
        for prior, mu in pairs:
            images = settings.generation_images(bench, purpose, prior, mu)
            if purpose == "diversity" and maps:
                # plan_items draws K samples of min(maps, L) label maps
                images = min(bench["counts"]["diversity_maps"], maps) * bench["counts"]["diversity_samples"]
            row.jobs += settings.num_generation_shards(bench, purpose, prior, mu)
            row.images += images
            row.denoiser_evals += images * steps_run(bench, prior, mu) * cfg
    seeds = settings.generated_settings(bench, settings.seed_settings(bench))  # Table 1's settings under the further sampling.seeds
    for prior, mu, _ in seeds:
        images = settings.generation_images(bench, "fid")
        row.jobs += settings.num_generation_shards(bench, "fid")
        row.images += images
        row.denoiser_evals += images * steps_run(bench, prior, mu) * cfg
    row.flops = row.denoiser_evals * costs.denoiser_step + row.images * costs.vae_decode
    row.disk_bytes = kept_images(bench) * height * width * png_bytes
    row.note = (f"{len(purposes[0][1])} FID settings + {len(purposes[1][1])} diversity settings"
                f" + {len(seeds)} Table 1 settings under further seeds; "
                f"{steps} DDIM steps, steps run per (prior, mu) from sampling.schedule.start_plan "
                f"({bench.protocol['start_rule']} rule); CFG x{cfg}; "
                f"{settings.sweep_fid_samples(bench)} images per mu-sweep / oracle point (counts.sweep_fid_samples); "
                f"disk: the PNGs kept (keep_images {settings.keep_images(bench)})")
    return row


def fid_setting_images(bench) -> list[tuple[str, str, str, int]]:
    """(prior, mu, purpose, images) of every setting scored for FID/mIoU (further seeds included)."""
    # the settings generated (the normal prior once under the controlnet start: settings.sample_mu)
    out = [(p, m, "fid", settings.generation_images(bench, "fid", p, m))
           for p, m in settings.generated_settings(bench, settings.fid_settings(bench))]
    out += [(p, m, f"fid_seed{s}", settings.generation_images(bench, f"fid_seed{s}", p, m))
            for p, m, s in settings.generated_settings(bench, settings.seed_settings(bench))]
    return out


def segmented_images(bench, images: int) -> int:
    """Images of a setting the segmenter sees: the first ``counts.segment_per_map`` samples of each
    label map (images are drawn map by map, so the first k x L images; every image when unset)."""
    per_map, maps = settings.segment_per_map(bench), num_val_maps(bench)
    return images if per_map is None or not maps else min(images, per_map * maps)


def kept_images(bench) -> int:
    """Generated images on disk after the run (``keep_images``): every one, the first shard of each
    FID setting (``grid``), or none."""
    keep = settings.keep_images(bench)
    if keep == "none":
        return 0
    size = int(bench["counts"]["shard_size"])
    fid = fid_setting_images(bench)
    if keep == "grid":
        return sum(min(n, size) for p, m, purpose, n in fid if purpose == "fid")
    div = settings.diversity_settings(bench)
    maps = num_val_maps(bench)
    per_div = settings.generation_images(bench, "diversity")
    if maps:
        per_div = min(bench["counts"]["diversity_maps"], maps) * bench["counts"]["diversity_samples"]
    return sum(n for *_, n in fid) + len(div) * per_div


def plan_benchmark(bench, costs: ModelCosts, rate: Throughput, png_bytes: float = PNG_BYTES_PER_PIXEL,
                   scoring: ScoringRates | None = None) -> list[StageCost]:
    """The rows of one benchmark, in pipeline order (module doc); with ``scoring`` (measured scoring
    speeds), the score, segmentation and diversity rows' hours come from those rates instead."""
    name = bench.name
    counts = bench["counts"]
    height, width = bench.resolution
    _, h, w = bench.latent_shape
    latent_bytes = 4 * h * w * 4
    maps = num_val_maps(bench)
    rows: list[StageCost] = [StageCost(name, "prepare data", jobs=1, device="cpu", note="dataset index")]
    if bench.is_toy:
        rows.append(StageCost(name, "train toy models", jobs=3, device="cpu",
                              note="toy VAE, base UNet and segmenter on CPU (FLOPs not counted)"))

    tune = StageCost(name, "fine-tune")
    if bench["models"].get("controlnet_checkpoint"):
        # the authors' release: converted, not trained (rule import_controlnet)
        tune = StageCost(name, "import ControlNet", jobs=1, device="cpu",
                         note="models.controlnet_checkpoint: converted by scpdiff import-controlnet, not fine-tuned")
    elif not bench["models"].get("controlnet"):
        cfg = (bench.get("training") or {}).get("controlnet") or {}
        samples = int(cfg.get("steps", 0)) * int(cfg.get("batch_size", 0)) * int(cfg.get("gradient_accumulation", 1))
        encoded = min(samples, int(bench["dataset"].get("num_train") or samples)) if cfg.get("cache_latents") else samples
        tune.jobs, tune.images, tune.denoiser_evals = 1, samples, samples
        # training.controlnet.crop: each step denoises a window, the fraction of the image it covers
        crop = cfg.get("crop")
        window = crop[0] * crop[1] / (bench.resolution[0] * bench.resolution[1]) if crop else 1.0
        tune.flops = TRAIN_FLOPS_PER_FORWARD * samples * costs.denoiser_step * window + encoded * costs.vae_encode
        if not bench.is_toy:
            from ..models.sd_configs import get_configs

            params = get_configs("sd21-base").expected_parameters
            kept = params["controlnet"] + (params["unet"] if cfg.get("unlock_decoder", True) else 0)
            tune.disk_bytes = 4.0 * kept
        tune.note = (f"{cfg.get('steps')} steps x batch {cfg.get('batch_size')}"
                     + (f" on {crop[0]}x{crop[1]} windows" if crop else "") + "; 3x forward FLOPs per sample"
                     + ("; checkpoint fp32 ControlNet (+ UNet, decoder unlocked)" if not bench.is_toy else ""))
    else:
        tune.note = "models.controlnet given: not fine-tuned"
    rows.append(tune)

    val_needed = any(get_prior_class(p).requires_latents for p, _ in settings.fid_settings(bench))
    # the official_* priors are imported from the authors' statistics (rule import_priors), never fitted
    imported = [p for p in bench["priors"] if get_prior_class(p).imported]
    fitted = [p for p in bench["priors"] if get_prior_class(p).needs_fit and p not in imported]
    n_ref = settings.num_reference_shards(bench) if fitted else 0  # no fitted prior: no reference latents
    enc = StageCost(name, "encode latents", jobs=n_ref, images=int(counts["reference"]) if fitted else 0)
    if val_needed:
        enc.jobs += settings.num_val_latent_shards(bench)
        enc.images += maps
    enc.note = "reference latents" + (" + the val maps' latents for the oracle prior" if val_needed else "")
    if any(reference_latent_set(bench, p) == "train_joint" for p in fitted):
        # protocol joint_reference: quarter_of_split, encoded in as many shards as the draw
        enc.jobs += n_ref
        enc.images += len(quarter_of_split(int(bench["dataset"].get("num_train")
                                                or TRAIN_IMAGES.get(bench["dataset"]["kind"], 0))))
        enc.note += " + the joint prior's quarter of the split (joint_reference)"
    enc.flops = enc.images * costs.vae_encode
    enc.disk_bytes = enc.images * latent_bytes
    rows.append(enc)

    fit = StageCost(name, "fit priors", jobs=len(fitted) * (n_ref + 1), images=len(fitted) * int(counts["reference"]),
                    device="cpu", note=f"{len(fitted)} fitted priors x {n_ref} shards + merges (CPU; FLOPs not counted)")
    if imported:
        fit.jobs += 1  # rule import_priors writes every official_* prior file in one job
        fit.note += f"; {len(imported)} priors imported from priors_from in one job (scpdiff import-priors)"
    rows.append(fit)

    rows.append(_generation(bench, costs, png_bytes))

    rows.append(StageCost(name, "reference stats", jobs=1, images=maps, inception_passes=maps,
                          flops=maps * costs.inception, disk_bytes=2 * 2048 * 2048 * 8.0,
                          note="Inception features of the real val images (mean + covariance, float64)"))
    fid = fid_setting_images(bench)
    fid_images = sum(n for *_, n in fid)
    # a setting of one shard is scored by its row job alone (workflow/rules/common.smk, setting_scoring_inputs)
    shards = sum(n for n in (settings.num_generation_shards(bench, purpose, p, m) for p, m, purpose, _ in fid) if n > 1)
    seg_images = sum(segmented_images(bench, n) for *_, n in fid)
    # Table 1's reference rows: real val (segmented only), real train (Inception only), VAE reconstructions (both)
    n_ref = int(counts["fid_samples"])
    val_ref = min(n_ref, maps) if maps else n_ref
    train_ref = min(n_ref, int(bench["dataset"].get("num_train") or n_ref))
    per_image = segmenter_passes_per_image(bench["segmenter"]["kind"])
    rows.append(StageCost(name, "reference rows", jobs=2 * len(settings.REFERENCE_FOLDERS),
                          images=2 * val_ref + train_ref, inception_passes=train_ref + val_ref,
                          segmenter_passes=2 * val_ref * per_image,
                          flops=(train_ref + val_ref) * costs.inception + val_ref * (costs.vae_encode + costs.vae_decode),
                          note="real val images (mIoU/Acc ceiling), real train images (FID/KID floor), VAE "
                               "reconstructions; written and scored like a setting"))
    feature_bytes = 2048 * 4.0  # float32 Inception features per image in the shard statistics
    rows.append(StageCost(name, "score FID/KID", jobs=shards + len(fid), images=fid_images, inception_passes=fid_images,
                          flops=fid_images * costs.inception, disk_bytes=fid_images * feature_bytes,
                          note=f"one job per generation shard of a sharded setting ({shards}: features + per-map "
                               f"confusion matrices) and one row job per FID setting ({len(fid)}, further seeds "
                               "included: the merge, or the whole score of a one-shard setting; FID/KID, mIoU/Acc, "
                               "bootstrap)"))
    per_map = settings.segment_per_map(bench)
    rows.append(StageCost(name, "segment", images=seg_images, segmenter_passes=seg_images * per_image,
                          note=f"{bench['segmenter']['kind']}: {per_image} scale(s) per image; "
                               + (f"{per_map} image(s) per label map (counts.segment_per_map)" if per_map else "every image")
                               + "; inside the shard score jobs; FLOPs not counted"))
    div = settings.generated_settings(bench, settings.diversity_settings(bench))
    k = int(counts["diversity_samples"])
    div_maps = min(int(counts["diversity_maps"]), maps) if maps else int(counts["diversity_maps"])
    rows.append(StageCost(name, "diversity", jobs=len(div), images=len(div) * div_maps * k,
                          note=f"{div_maps * k * (k - 1) // 2} LPIPS + MS-SSIM pairs per setting (FLOPs not counted)"))
    rows.append(StageCost(name, "tables", jobs=settings.report_jobs(bench), device="cpu",
                          note="metrics CSVs, tables, mu sweep, samples grid, oracle curve"))
    for row in rows:
        if row.device == "gpu":
            row.gpu_hours = rate.gpu_hours(row.flops)
    if scoring is not None:
        by_stage = {r.stage: r for r in rows}
        measured = {"score FID/KID": ("fid_features", by_stage["score FID/KID"].inception_passes),
                    "segment": (f"segmentation:{bench['segmenter']['kind']}", by_stage["segment"].images),
                    "diversity": ("lpips", len(div) * div_maps * k * (k - 1) // 2)}
        for stage, (key, count) in measured.items():
            hours = scoring.hours(key, count)
            if hours is not None:
                by_stage[stage].gpu_hours = hours
                by_stage[stage].note += f"; hours at {scoring.rates[key]:.4g}/s ({key}, {scoring.basis})"
    return rows
