"""Score a folder of images with the paper's protocol: FID/KID, mIoU/accuracy, LPIPS/MS-SSIM diversity.

One DataLoader pass decodes every image once and feeds both the FID Inception and the segmenter;
diversity then reads the ``{name}_{k:02d}`` groups. The result is one flat row of metrics plus the
provenance needed to trust it (weight hashes, counts, resolution, versions).

    ref = reference_statistics(bench, "val", resize="tf1_bilinear")
    row = score_folder(entries, resolution=bench.resolution, reference=ref, segmenter=seg, masks=masks, ...)
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config.protocol import fid_mask_draw
from ..datasets.folders import read_rgb_array
from ..errors import ConfigError, InputError
from ..utils.files import atomic_path, check_output_path
from ..utils.hashing import sha256_bytes
from .bootstrap import (
    BootstrapOptions, fid_replicates, image_weights, kid_replicates, mean_replicates, resample_counts,
    segmentation_replicates, summarize,
)
from .defaults import BATCH_SIZE, CPU_BATCH_SIZE, FID_RESIZE, KID_SUBSETS, KID_SUBSET_SIZE, MIOU_AVERAGE, SUBSET_SEED
from .diversity import pairwise_lpips, pairwise_ms_ssim
from .fid import (
    GaussianStats, ReferenceStats, extract_features, feature_frechet_distance, fid_infinity, inception_features,
    kernel_inception_distance, load_inception, reference_key, resize_for_inception,
)
from .images import DatasetImages, ImageEntry, ScoringImages
from .segmentation import ConfusionMatrix
from .weights import cache_dir


def _progress(iterable, total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", file=sys.stderr, mininterval=2.0, leave=False)


def _loader(dataset, batch_size: int | None, workers: int, device: str | torch.device) -> DataLoader:
    """``batch_size`` None: the device's (:func:`default_batch_size`)."""
    return DataLoader(dataset, batch_size=batch_size or default_batch_size(device), shuffle=False, num_workers=workers,
                      pin_memory=torch.device(device).type == "cuda", persistent_workers=False,
                      prefetch_factor=4 if workers > 0 else None)


def default_workers(device: str | torch.device) -> int:
    """Decoding must keep up with a GPU; on CPU the network is the bottleneck and workers only compete."""
    import os

    if torch.device(device).type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def default_batch_size(device: str | torch.device) -> int:
    """Images per network call: :data:`.defaults.BATCH_SIZE` on a GPU, :data:`.defaults.CPU_BATCH_SIZE` on CPU."""
    return BATCH_SIZE if torch.device(device).type == "cuda" else CPU_BATCH_SIZE


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("scpdiff", "torch", "torchvision", "torch-fidelity", "lpips", "pytorch-msssim", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


# ----------------------------------------------------------------------------------------------
# reference statistics



def data_id(bench, split: str, n: int) -> str:
    """Changes when the dataset config (root, toy seed/counts), the split's size or the toy scene
    generator's version changes."""
    d = dict(bench["dataset"])
    d["root"] = str(Path(d["root"]).resolve())
    if d.get("kind") == "toy":
        from ..datasets.toy import GENERATOR_VERSION

        d["generator_version"] = GENERATOR_VERSION
    blob = json.dumps({"dataset": d, "split": split, "n": n}, sort_keys=True).encode()
    return sha256_bytes(blob)[:10]


def compute_reference(dataset, model, weights_sha256: str, resize: str, batch_size: int | None = None,
                      workers: int = 0, device="cpu", meta: dict | None = None) -> ReferenceStats:
    images = DatasetImages(dataset, functools.partial(resize_for_inception, mode=resize))
    loader = _loader(images, batch_size, workers, device)
    feats = extract_features(_progress(loader, len(loader), "reference FID features"), model)
    info = {"weights_sha256": weights_sha256, "resize": resize, "num_images": int(len(feats)),
            "resolution": list(getattr(dataset, "resolution", ())), **(meta or {})}
    return ReferenceStats(feats.astype(np.float32), info)


def reference_statistics(bench, split: str = "val", resize: str = FID_RESIZE, device="cpu", cache=None,
                         batch_size: int | None = None, workers: int = 0, model=None, weights_sha256: str | None = None,
                         log: Callable[[str], None] = print) -> tuple[ReferenceStats, Path]:
    """The benchmark split's reference statistics from the cache, computed (and cached) on a miss.

    The cache name holds the benchmark, split, resolution, resize mode, Inception weights' hash and a
    hash of the dataset config, so a changed input never reuses stale statistics.
    """
    if model is None:
        model, weights_sha256 = load_inception(device, cache=cache)
    from ..datasets import open_benchmark_split

    dataset = open_benchmark_split(bench, split)
    key = f"{reference_key(bench.name, split, bench.resolution, resize, weights_sha256)}-data{data_id(bench, split, len(dataset))}"
    expand = None
    if split == "val" and bench.protocol["fid_reference"] == "original_images":
        dataset, expand = original_image_reference(bench, dataset)
        key += f"-orig{sha256_bytes(json.dumps(expand).encode())[:10]}"
        batch_size = 1  # the originals differ in size
    path = cache_dir(cache) / "ref_stats" / f"{key}.npz"
    if path.is_file():
        ref = ReferenceStats.load(path)
        ref.check_compatible(weights_sha256, resize, str(path))
        log(f"reference statistics: reusing {path}")
        return ref, path
    log(f"reference statistics: computing {key} from {len(dataset)} images")
    ref = compute_reference(dataset, model, weights_sha256, resize, batch_size, workers, device,
                            meta={"benchmark": bench.name, "split": split, "key": key})
    if expand is not None:
        ref = ReferenceStats(ref.features[expand], {**ref.meta, "num_images": len(expand),
                                                    "fid_reference": "original_images"})
    ref.save(path)
    return ref, path


class OriginalImages:
    """Val images ``indices`` of a folder dataset as their files hold them (no resize): the
    ``original_images`` FID reference (docs/protocol.md)."""

    def __init__(self, dataset, indices: Sequence[int]):
        if not hasattr(dataset, "samples"):
            raise InputError(f"the FID reference 'original_images' needs image files; the {type(dataset).__name__} "
                             "dataset has none (set protocol fid_reference: val_at_resolution)")
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return (read_rgb_array(self.dataset.samples[self.indices[i]].image),)


def original_image_reference(bench, dataset) -> tuple[OriginalImages, list[int]]:
    """The official "real" FID set (noise_prior_inference.py:275): the original file of the val map
    of every generated image, repeats included. Returns the distinct images and, per generated
    image, the row of its image's features."""
    n = int(bench["counts"]["fid_samples"])
    maps = fid_mask_draw(bench.protocol, n, len(dataset)) or [i % len(dataset) for i in range(n)]
    unique = sorted(set(maps))
    row = {m: j for j, m in enumerate(unique)}
    return OriginalImages(dataset, unique), [row[m] for m in maps]


def copy_reference(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_reference_statistics(bench, split: str, out, **kwargs) -> ReferenceStats:
    """``scpdiff ref-stats``: :func:`reference_statistics` copied to ``out`` (checked before any work)."""
    check_output_path(out, "file", "--out (the reference statistics)")
    ref, cached = reference_statistics(bench, split, **kwargs)
    copy_reference(cached, Path(out))
    return ref


# ----------------------------------------------------------------------------------------------
# scoring

@dataclass
class ScoreOptions:
    fid: bool = True
    fid_infinity: bool = False
    fid_resize: str = FID_RESIZE
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    segmentation: bool = True
    miou_average: str = MIOU_AVERAGE
    diversity: bool = False
    batch_size: int | None = None  # None: the device's (default_batch_size)
    workers: int = 0
    device: str = "cpu"
    seed: int = SUBSET_SEED
    segment_per_map: int | None = None  # None: every image (counts.segment_per_map)
    bootstrap: BootstrapOptions = field(default_factory=BootstrapOptions)


# KID replicates hold an N x N kernel matrix of the scored images: above this many images the
# interval is left out rather than filling memory (FID, mIoU and diversity intervals stay)
KID_BOOTSTRAP_MAX_IMAGES = 10_000


def diversity_groups(entries: Sequence[ImageEntry]) -> dict[str, list[ImageEntry]]:
    groups: dict[str, list[ImageEntry]] = defaultdict(list)
    for e in entries:
        if e.sample is not None:
            groups[e.name].append(e)
    return {k: sorted(v, key=lambda e: e.sample) for k, v in sorted(groups.items()) if len(v) >= 2}


def score_diversity(entries: Sequence[ImageEntry], lpips_model, device="cpu",
                    bootstrap: BootstrapOptions | None = None) -> dict[str, Any]:
    """Mean pairwise LPIPS and MS-SSIM per label map, averaged over label maps (paper Table 3);
    with ``bootstrap``, their intervals over label maps (``bootstrap`` key)."""
    groups = diversity_groups(entries)
    if not groups:
        raise InputError("--diversity: no label map has 2 or more samples named {name}_{k:02d}.png")
    lp, ms = [], []
    for name, group in _progress(groups.items(), len(groups), "diversity"):
        samples = torch.stack([torch.from_numpy(read_rgb_array(e.path)).permute(2, 0, 1) for e in group])
        lp.append(pairwise_lpips(lpips_model, samples))
        ms.append(pairwise_ms_ssim(samples, device=device))
    sizes = sorted({len(g) for g in groups.values()})
    row = {"lpips": float(np.mean(lp)), "ms_ssim": float(np.mean(ms)), "diversity_maps": len(groups),
           "diversity_samples": sizes[0] if len(sizes) == 1 else sizes}
    if bootstrap is not None and bootstrap.resamples:
        names = list(groups)  # sorted by name
        counts = resample_counts(len(names), bootstrap)
        row["bootstrap"] = summarize({"lpips": mean_replicates(np.array(lp), counts),
                                      "ms_ssim": mean_replicates(np.array(ms), counts)}, bootstrap, names,
                                     {"lpips": row["lpips"], "ms_ssim": row["ms_ssim"]})
    return row


def bootstrap_scores(names: Sequence[str], *, features: np.ndarray | None = None, reference: np.ndarray | None = None,
                     matrices: dict[str, np.ndarray] | None = None, miou_average: str = MIOU_AVERAGE,
                     opts: BootstrapOptions, estimates: dict[str, float] | None = None) -> dict[str, Any]:
    """Bootstrap record (:func:`.bootstrap.summarize`) of FID/KID (``features`` of the images whose
    label maps are ``names``, one name per image) and mIoU/accuracy (``matrices`` per label map)."""
    units = sorted(set(names))
    position = {u: j for j, u in enumerate(units)}
    counts = resample_counts(len(units), opts)
    reps: dict[str, np.ndarray] = {}
    if features is not None:
        weights = image_weights(counts, np.array([position[n] for n in names]))
        reps["fid"] = fid_replicates(features, weights, reference)
        if len(features) <= KID_BOOTSTRAP_MAX_IMAGES:
            reps["kid"] = kid_replicates(features, weights, reference)
    if matrices is not None:
        # a map none of whose images was segmented (counts.segment_per_map) adds no pixels
        empty = np.zeros_like(next(iter(matrices.values()))) if matrices else None
        stacked = np.stack([matrices.get(u, empty) for u in units])
        reps.update(segmentation_replicates(stacked, counts, miou_average))
    return summarize(reps, opts, units, estimates)


@dataclass
class ImageStatistics:
    """What a set of images (one generation shard, or a whole setting) contributes to its scores,
    merged across shards by concatenation (:meth:`merge`): nothing is averaged before the merge, so
    merged scores equal those of one pass over every image.

    ``features`` are the Inception pool features as the network returns them (float32; the scores
    compute in float64 from them, as a single pass does), which FID, KID and their bootstrap
    replicates need per image; ``matrices`` the confusion matrix of every segmented label map
    (``matrix_names``), summed over that map's images, which mIoU / accuracy and their bootstrap
    need per map; ``image_mious`` the per-image mIoUs of the ``nanmean`` rule.
    """

    names: list[str]  # the label map of every image, in the order of ``features``
    resolution: tuple[int, int]
    features: np.ndarray | None = None  # float32 [N, 2048]
    matrix_names: list[str] = field(default_factory=list)
    matrices: np.ndarray | None = None  # int64 [M, C, C], rows = ground truth
    image_mious: list[float] = field(default_factory=list)
    label_size: tuple[int, int] | None = None
    segmented_images: int = 0
    meta: dict = field(default_factory=dict)  # what the images were scored with (checked at the merge)
    provenance: dict = field(default_factory=dict)  # inputs, versions, date (not compared at the merge)

    FORMAT = "scpdiff-image-statistics/1"

    @property
    def segmented(self) -> bool:
        return self.matrices is not None

    def save(self, path) -> None:
        arrays = {"names": np.array(self.names, dtype=str), "matrix_names": np.array(self.matrix_names, dtype=str),
                  "image_mious": np.asarray(self.image_mious, dtype=np.float64),
                  "info": np.array(json.dumps({
                      "format": self.FORMAT, "resolution": list(self.resolution),
                      "label_size": list(self.label_size) if self.label_size else None,
                      "segmented_images": self.segmented_images, "meta": self.meta,
                      "provenance": self.provenance}, sort_keys=True))}
        if self.features is not None:
            arrays["features"] = self.features
        if self.matrices is not None:
            arrays["matrices"] = self.matrices
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> "ImageStatistics":
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                if info.get("format") != cls.FORMAT:
                    raise ValueError(f"format {info.get('format')!r}, expected {cls.FORMAT!r}")
                return cls(names=[str(n) for n in z["names"]], resolution=tuple(info["resolution"]),
                           features=z["features"] if "features" in z else None,
                           matrix_names=[str(n) for n in z["matrix_names"]],
                           matrices=z["matrices"] if "matrices" in z else None,
                           image_mious=[float(v) for v in z["image_mious"]],
                           label_size=tuple(info["label_size"]) if info["label_size"] else None,
                           segmented_images=int(info["segmented_images"]), meta=info["meta"],
                           provenance=info.get("provenance") or {})
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{path}: not an image-statistics file of `scpdiff score --out X.npz` ({exc})") from exc

    @classmethod
    def merge(cls, parts: Sequence["ImageStatistics"], sources: Sequence[str] | None = None) -> "ImageStatistics":
        """One setting's statistics from its shards' (in shard order); a label map segmented in
        several shards has its matrices summed. Shards scored differently are refused."""
        if not parts:
            raise InputError("no image statistics to merge")
        sources = list(sources or [f"part {i}" for i in range(len(parts))])
        first = parts[0]
        for part, src in zip(parts[1:], sources[1:]):
            for what, a, b in (("resolution", part.resolution, first.resolution),
                               ("label size", part.label_size, first.label_size),
                               ("scoring", part.meta, first.meta),
                               ("FID features", part.features is None, first.features is None),
                               ("segmentation", part.segmented, first.segmented)):
                if a != b:
                    raise InputError(f"{src}: {what} {a!r} differs from {sources[0]}'s {b!r}; "
                                     "the shards of one setting must be scored alike")
        names = [n for p in parts for n in p.names]
        seen: dict[str, int] = {}
        stacked = []
        if first.segmented:
            for p in parts:
                for name, m in zip(p.matrix_names, p.matrices):
                    if name in seen:
                        stacked[seen[name]] = stacked[seen[name]] + m
                    else:
                        seen[name] = len(stacked)
                        stacked.append(m.astype(np.int64))
        return cls(names=names, resolution=first.resolution,
                   features=np.concatenate([p.features for p in parts]) if first.features is not None else None,
                   matrix_names=list(seen), matrices=np.stack(stacked) if first.segmented and stacked else
                   (np.zeros((0, 0, 0), np.int64) if first.segmented else None),
                   image_mious=[v for p in parts for v in p.image_mious], label_size=first.label_size,
                   segmented_images=sum(p.segmented_images for p in parts), meta=first.meta,
                   provenance={**first.provenance, "images": [d for p in parts for d in p.provenance.get("images", [])],
                               "statistics": sources})


def segmented_entries(entries: Sequence[ImageEntry], per_map: int | None) -> list[bool]:
    """Which images are segmented: every one, or the first ``per_map`` samples of each label map
    (``{name}.png`` is sample 0, ``{name}_{r:02d}.png`` sample r; OASIS segments one image per
    map). The choice depends on the file name alone, so every shard decides alike."""
    if per_map is None:
        return [True] * len(entries)
    return [(e.sample or 0) < per_map for e in entries]


def measure_images(entries: Sequence[ImageEntry], *, resolution: tuple[int, int], opts: ScoreOptions,
                   inception=None, segmenter=None, masks: Callable[[str], np.ndarray] | None = None,
                   num_classes: int | None = None, ignore_index: int = 255) -> ImageStatistics:
    """The per-image Inception features and per-map confusion matrices of ``entries`` (one decode
    of each image feeds both networks)."""
    use_fid = opts.fid and inception is not None
    use_seg = opts.segmentation and segmenter is not None and masks is not None
    names = [e.name for e in entries]
    stats = ImageStatistics(names=names, resolution=tuple(resolution))
    if not (use_fid or use_seg):
        return stats
    label_size = None
    if use_seg:
        label_size = tuple(segmenter.label_size) if getattr(segmenter, "label_size", None) else tuple(resolution)
        cm = ConfusionMatrix(num_classes or segmenter.num_classes, ignore_index)
    fid_resize = functools.partial(resize_for_inception, mode=opts.fid_resize) if use_fid else None
    chosen = segmented_entries(entries, opts.segment_per_map) if use_seg else [False] * len(entries)
    # segmented images first (with their masks), then the others (Inception only); features are put
    # back in the entries' order
    order = [i for i, c in enumerate(chosen) if c] + [i for i, c in enumerate(chosen) if not c]
    passes = [([i for i in order if chosen[i]], True), ([i for i in order if not chosen[i]], False)]
    feats: dict[int, np.ndarray] = {}
    for positions, segment in passes:
        if not positions or not (use_fid or segment):
            continue
        data = ScoringImages([entries[i] for i in positions], fid_resize=fid_resize,
                             masks=masks if segment else None, label_size=label_size)
        loader = _loader(data, opts.batch_size, opts.workers, opts.device)
        done = 0
        for batch in _progress(loader, len(loader), "scoring"):
            n = len(batch["image"])
            if use_fid:
                out = inception_features(inception, batch["fid"]).cpu().numpy()
                feats.update(zip(positions[done:done + n], out))
            if segment:
                pred = segmenter.predict(batch["image"].to(opts.device))
                cm.update(pred.cpu(), batch["mask"], keys=[names[i] for i in positions[done:done + n]])
            done += n
    if use_fid:
        stats.features = np.stack([feats[i] for i in range(len(entries))])
    if use_seg:
        stats.matrix_names = list(cm.by_key)
        stats.matrices = (np.stack([cm.by_key[k].astype(np.int64) for k in stats.matrix_names]) if cm.by_key
                          else np.zeros((0, cm.num_classes, cm.num_classes), np.int64))
        stats.image_mious = list(cm.image_mious)
        stats.label_size = label_size
        stats.segmented_images = sum(chosen)
        stats.meta["num_classes"], stats.meta["ignore_index"] = cm.num_classes, cm.ignore_index
    stats.meta.update({"fid_resize": opts.fid_resize if use_fid else None, "segment_per_map": opts.segment_per_map})
    return stats


def scores_from_statistics(stats: ImageStatistics, *, opts: ScoreOptions,
                           reference: ReferenceStats | None = None) -> dict[str, Any]:
    """FID / KID, mIoU / accuracy and their bootstrap intervals over label maps from ``stats`` (one
    pass's, or the merge of a setting's shards)."""
    names = stats.names
    row: dict[str, Any] = {"num_images": len(names), "num_label_maps": len(set(names)),
                           "resolution": list(stats.resolution)}
    use_fid, use_seg = stats.features is not None, stats.segmented
    if use_fid:
        if reference is None:
            raise ConfigError("FID needs reference statistics")
        f = stats.features.astype(np.float64)
        ref_feats = reference.features.astype(np.float64)
        row["fid"] = feature_frechet_distance(f, ref_feats)
        row["kid"], row["kid_std"] = kernel_inception_distance(f, ref_feats, opts.kid_subsets, opts.kid_subset_size, opts.seed)
        row["kid_subset_size"] = min(opts.kid_subset_size, len(f), len(ref_feats))
        row["fid_reference_images"] = len(ref_feats)
        if opts.fid_infinity:
            row["fid_infinity"] = fid_infinity(f, GaussianStats.of(ref_feats), seed=opts.seed)
    if use_seg:
        num_classes = int(stats.meta["num_classes"])
        cm = ConfusionMatrix(num_classes, int(stats.meta["ignore_index"]))
        cm.matrix = stats.matrices.sum(0) if len(stats.matrices) else cm.matrix
        cm.image_mious = list(stats.image_mious)
        row["miou"] = cm.miou(opts.miou_average)
        row["miou_average"] = opts.miou_average
        row["pixel_accuracy"] = cm.pixel_accuracy
        row["mean_class_accuracy"] = cm.mean_class_accuracy
        row["label_size"] = list(stats.label_size)
        row["class_iou"] = [None if not np.isfinite(v) else float(v) for v in cm.class_iou()]
        row["segmented_images"] = stats.segmented_images
        if opts.segment_per_map is not None:
            row["segment_per_map"] = opts.segment_per_map
    if (use_fid or use_seg) and opts.bootstrap.resamples and len(set(names)) < 2:
        # without masks, {name}_{k:02d} files are samples of one map: nothing to resample
        row["bootstrap_skipped"] = f"one label map ({names[0]!r}); intervals need two or more"
    elif (use_fid or use_seg) and opts.bootstrap.resamples:
        row["bootstrap"] = bootstrap_scores(
            names, features=f if use_fid else None, reference=ref_feats if use_fid else None,
            matrices=dict(zip(stats.matrix_names, stats.matrices)) if use_seg else None,
            miou_average=opts.miou_average, opts=opts.bootstrap,
            estimates={k: row[k] for k in ("fid", "kid", "miou", "pixel_accuracy") if k in row})
    return row


def score_folder(entries: Sequence[ImageEntry], *, resolution: tuple[int, int], opts: ScoreOptions,
                 reference: ReferenceStats | None = None, inception=None, segmenter=None,
                 masks: Callable[[str], np.ndarray] | None = None, num_classes: int | None = None,
                 ignore_index: int = 255, lpips_model=None) -> dict[str, Any]:
    """Metrics of ``entries`` as one flat dict (NaN-free keys only for what was computed)."""
    t0 = time.time()
    stats = measure_images(entries, resolution=resolution, opts=opts, inception=inception, segmenter=segmenter,
                           masks=masks, num_classes=num_classes, ignore_index=ignore_index)
    row = scores_from_statistics(stats, opts=opts, reference=reference)
    if opts.diversity:
        if lpips_model is None:
            raise ConfigError("diversity needs the LPIPS model")
        div = score_diversity(entries, lpips_model, opts.device, opts.bootstrap)
        if "bootstrap" in row and "bootstrap" in div:
            # one record for the row: the diversity maps are another set of units, kept apart
            row["diversity_bootstrap"] = div.pop("bootstrap")
        row.update(div)
    row["seconds"] = round(time.time() - t0, 3)
    return row
