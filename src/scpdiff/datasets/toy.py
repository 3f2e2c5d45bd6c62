"""The toy benchmark's dataset: procedurally generated, seeded street scenes with semantic masks.

Every scene follows the layout regularities of a street photograph (sky on top, a skyline of
buildings standing on a horizon, a road converging to a vanishing point with sidewalks on both
sides, cars on the road scaled by perspective, poles with signs on the sidewalks, trees and
terrain beside the street), and every class varies in appearance between scenes (colour, texture,
global lighting). So the per-position and per-class latent statistics that the paper's priors
capture (sections 3.2-3.3) carry real information here, as they do in Cityscapes.

On disk the toy dataset has the same layout the readers of real datasets present::

    ROOT/classes.json                       {"names": [...], "palette": [[r, g, b], ...], "ignore_index": 255}
    ROOT/toy.json                           generation parameters; written last (the completion marker)
    ROOT/{split}/images/{name}.png          RGB
    ROOT/{split}/labels/{name}.png          8-bit label ids (255 = ignore)

    write_toy_dataset("data/toy", num_train=2000, num_val=200, resolution=(64, 128), seed=0)
    ds = open_dataset("toy", root="data/toy", split="train", resolution=(64, 128))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from . import register_dataset
from .base import ClassInfo, SegmentationDataset
from .folders import bilinear_label_resize

GENERATOR_VERSION = 1
IGNORE_INDEX = 255

# Class ids and their conditioning colours (the Cityscapes palette for the same classes).
CLASS_NAMES = ("road", "sidewalk", "building", "pole", "traffic sign", "vegetation", "terrain", "sky", "car")
PALETTE = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (153, 153, 153),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (0, 0, 142),
    ],
    dtype=np.uint8,
)
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, CAR = range(len(CLASS_NAMES))
SPLIT_STREAMS = {"train": 0, "val": 1}


def toy_classes() -> ClassInfo:
    return ClassInfo(names=CLASS_NAMES, palette=PALETTE.copy(), ignore_index=IGNORE_INDEX, source="toy")


CLASSES = toy_classes()  # read by scpdiff.datasets.class_info


# --------------------------------------------------------------------------------------- rendering
@dataclass
class _Canvas:
    """A scene being painted: float RGB in [0, 1] and the label map, painted back to front."""

    image: np.ndarray  # float32 [H, W, 3]
    mask: np.ndarray  # uint8 [H, W]
    yy: np.ndarray  # pixel-centre row coordinates [H, W]
    xx: np.ndarray  # pixel-centre column coordinates [H, W]

    def paint(self, region: np.ndarray, label: int, colour: np.ndarray) -> None:
        """Paint ``region`` with ``colour`` (an RGB triple or a full [H, W, 3] texture)."""
        self.mask[region] = label
        self.image[region] = colour[region] if colour.ndim == 3 else colour


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """Bilinearly upsampled white noise: a cheap texture with correlation length ~ size / cells."""
    from scipy.ndimage import zoom

    low = rng.standard_normal((cells[0] + 1, cells[1] + 1)).astype(np.float32)
    up = zoom(low, ((height + 1) / low.shape[0], (width + 1) / low.shape[1]), order=1)
    return up[:height, :width]


def _jitter(rng: np.random.Generator, base, spread: float) -> np.ndarray:
    return np.clip(np.asarray(base, dtype=np.float32) / 255.0 + rng.normal(0.0, spread, 3), 0.0, 1.0).astype(np.float32)


def _textured(rng, canvas: _Canvas, colour: np.ndarray, amount: float, cells=(8, 16)) -> np.ndarray:
    h, w = canvas.mask.shape
    n = _smooth_noise(rng, h, w, cells) * amount + rng.standard_normal((h, w)).astype(np.float32) * amount * 0.5
    return colour[None, None, :] * (1.0 + n[..., None])


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: ``(image uint8 [H, W, 3], mask uint8 [H, W])``, fully determined by ``rng``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    c = _Canvas(np.zeros((height, width, 3), np.float32), np.full((height, width), SKY, np.uint8), yy, xx)
    horizon = rng.uniform(0.38, 0.55) * height
    vanish_x = rng.uniform(0.3, 0.7) * width

    # sky: a vertical gradient, clear blue or overcast grey
    if rng.random() < 0.75:
        top, bottom = _jitter(rng, (60, 110, 200), 0.06), _jitter(rng, (170, 200, 235), 0.06)
    else:
        top, bottom = _jitter(rng, (150, 155, 165), 0.05), _jitter(rng, (200, 200, 205), 0.05)
    t = np.clip(yy / max(horizon, 1.0), 0, 1)[..., None]
    sky = top * (1 - t) + bottom * t + _smooth_noise(rng, height, width, (3, 6))[..., None] * 0.03
    c.paint(np.ones_like(c.mask, bool), SKY, sky)

    # skyline: buildings standing on the horizon, with window grids
    x = rng.uniform(-0.1, 0.05) * width
    while x < width:
        bw = rng.uniform(0.1, 0.3) * width
        if rng.random() < 0.85:
            top_y = rng.uniform(0.02, 0.8) * horizon
            region = (xx >= x) & (xx < x + bw) & (yy >= top_y) & (yy < horizon + 1)
            base = [(110, 110, 115), (170, 150, 120), (150, 80, 60), (90, 80, 75), (190, 185, 175)][rng.integers(5)]
            wall = _textured(rng, c, _jitter(rng, base, 0.05), 0.06)
            period_x, period_y = rng.uniform(3, 6), rng.uniform(4, 7)
            windows = ((xx - x) % period_x < period_x * 0.5) & ((yy - top_y) % period_y < period_y * 0.45)
            wall = np.where(windows[..., None], wall * rng.uniform(0.45, 0.75), wall)
            c.paint(region, BUILDING, wall)
        x += bw

    # ground below the horizon: terrain or hedges, then the road and its sidewalks (a perspective wedge)
    below = c.yy >= horizon
    if rng.random() < 0.6:
        c.paint(below, TERRAIN, _textured(rng, c, _jitter(rng, (130, 150, 80), 0.06), 0.12, (16, 32)))
    else:
        c.paint(below, VEGETATION, _textured(rng, c, _jitter(rng, (50, 100, 40), 0.06), 0.2, (16, 32)))
    depth = np.clip((yy - horizon) / max(height - horizon, 1.0), 0, None)  # 0 at horizon, 1 at bottom
    road_half = rng.uniform(0.3, 0.6) * width
    walk = rng.uniform(0.15, 0.35) * width
    skew = rng.uniform(-0.3, 0.3) * width
    centre = vanish_x + skew * depth
    dx = xx - centre
    sidewalk = below & (np.abs(dx) < (road_half + walk) * depth)
    road = below & (np.abs(dx) < road_half * depth)
    c.paint(sidewalk, SIDEWALK, _textured(rng, c, _jitter(rng, (165, 155, 150), 0.07), 0.08))
    road_tex = _textured(rng, c, _jitter(rng, (85, 85, 90), 0.05), 0.1, (16, 32))
    lane = (np.abs(dx) < 0.025 * road_half * depth + 0.3) & ((depth * 12.0) % 1.0 < 0.5) & (depth > 0.05)
    road_tex = np.where(lane[..., None], np.float32(0.9), road_tex)
    c.paint(road, ROAD, road_tex)

    # trees beside the street, in front of the buildings
    for _ in range(rng.integers(0, 4)):
        side = rng.choice([-1.0, 1.0])
        d = rng.uniform(0.1, 0.7)
        tx = vanish_x + skew * d + side * (road_half + walk * 1.1) * d
        ty = horizon + (height - horizon) * d
        r = (0.15 + 0.5 * d) * height * rng.uniform(0.5, 0.9)
        canopy = ((xx - tx) / r) ** 2 + ((yy - (ty - 1.6 * r)) / (1.1 * r)) ** 2 < 1.0
        trunk = (np.abs(xx - tx) < max(0.6, 0.06 * r)) & (yy < ty) & (yy >= ty - 1.6 * r)
        c.paint(trunk, VEGETATION, _jitter(rng, (80, 60, 40), 0.04))
        c.paint(canopy, VEGETATION, _textured(rng, c, _jitter(rng, (50, 110, 40), 0.07), 0.25, (16, 32)))

    # poles (some carrying a sign) on the sidewalks, far ones first
    for d in np.sort(rng.uniform(0.15, 1.0, rng.integers(0, 4))):
        side = rng.choice([-1.0, 1.0])
        px = vanish_x + skew * d + side * (road_half + walk * 0.5) * d
        py = horizon + (height - horizon) * d
        ph = (0.25 + 0.6 * d) * height
        pw = max(0.6, 0.02 * width * d)
        pole = (np.abs(xx - px) < pw) & (yy < py) & (yy >= py - ph)
        c.paint(pole, POLE, _jitter(rng, (70, 70, 75), 0.05))
        if rng.random() < 0.6:
            s = max(1.5, 0.06 * height * (0.4 + d))
            sign = (np.abs(xx - px) < s) & (np.abs(yy - (py - ph + s)) < s * 0.8)
            colour = [(200, 40, 40), (40, 70, 180), (230, 200, 40)][rng.integers(3)]
            c.paint(sign, SIGN, _jitter(rng, colour, 0.05))

    # cars on the road, scaled by perspective, painted far to near for occlusion
    for d in np.sort(rng.uniform(0.15, 0.95, rng.integers(0, 5))):
        lane_pos = rng.uniform(-0.7, 0.7)
        cx = vanish_x + skew * d + lane_pos * road_half * d
        cy = horizon + (height - horizon) * d
        cw = 0.35 * road_half * d * rng.uniform(0.8, 1.2)
        ch = cw * rng.uniform(0.45, 0.65)
        body = (np.abs(xx - cx) < cw) & (yy < cy) & (yy >= cy - ch)
        cabin = (np.abs(xx - cx) < cw * 0.6) & (yy < cy - ch + 1) & (yy >= cy - ch * 1.6)
        paint = _jitter(rng, rng.integers(20, 236, 3), 0.02)
        tex = _textured(rng, c, paint, 0.04)
        glass = cabin & (np.abs(xx - cx) < cw * 0.5) & (yy >= cy - ch * 1.45)
        wheels = body & (yy >= cy - ch * 0.3) & (np.abs(np.abs(xx - cx) - cw * 0.65) < cw * 0.18)
        tex = np.where((glass | wheels)[..., None], np.float32(0.12), tex)
        c.paint(body | cabin, CAR, tex)

    # global lighting: brightness, colour cast and a horizontal sun gradient
    light = rng.uniform(0.7, 1.15) * rng.normal(1.0, 0.03, 3).astype(np.float32)
    sun = 1.0 + rng.uniform(-0.15, 0.15) * (xx / width - 0.5)
    image = np.clip(c.image * light[None, None, :] * sun[..., None], 0.0, 1.0)
    return (image * 255.0 + 0.5).astype(np.uint8), c.mask


# ----------------------------------------------------------------------------------------- writing
def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Each scene's own stream: a scene never depends on how many others were generated."""
    return np.random.default_rng([seed, SPLIT_STREAMS[split], index])


def _generation_record(num_train: int, num_val: int, resolution: tuple[int, int], seed: int) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "resolution": [int(resolution[0]), int(resolution[1])],
        "seed": int(seed),
    }


def toy_dataset_complete(root: str | os.PathLike, num_train: int, num_val: int, resolution, seed: int) -> bool:
    """True when ``root`` holds a finished toy dataset generated with exactly these parameters."""
    marker = Path(root) / "toy.json"
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == _generation_record(num_train, num_val, resolution, seed)
    except json.JSONDecodeError:
        return False


def _write_scenes(folder: Path, split: str, indices: Sequence[int], seed: int, height: int, width: int) -> None:
    for i in indices:
        image, mask = render_scene(scene_rng(seed, split, i), height, width)
        name = f"{split}_{i:05d}"
        Image.fromarray(image, "RGB").save(folder / split / "images" / f"{name}.png", compress_level=1)
        Image.fromarray(mask, "L").save(folder / split / "labels" / f"{name}.png", compress_level=1)


def write_toy_dataset(
    root: str | os.PathLike, num_train: int, num_val: int, resolution: tuple[int, int] = (64, 128), seed: int = 0,
    workers: int = 1,
) -> bool:
    """Generate the toy dataset into ``root`` (atomically, as one folder); return False if already there.

    A ``root`` that exists but was not written by this function is never replaced. Each scene has its
    own generator (:func:`scene_rng`), so ``workers`` processes render the same files as one.
    """
    from ..utils.files import atomic_dir

    root = Path(root)
    if toy_dataset_complete(root, num_train, num_val, resolution, seed):
        return False
    if root.exists() and any(root.iterdir()) and not (root / "toy.json").is_file():
        raise InputError(f"{root} exists and is not a toy dataset (no toy.json); refusing to overwrite it")
    height, width = int(resolution[0]), int(resolution[1])
    with atomic_dir(root) as tmp:
        classes = {"names": list(CLASS_NAMES), "palette": PALETTE.tolist(), "ignore_index": IGNORE_INDEX}
        (tmp / "classes.json").write_text(json.dumps(classes, indent=1))
        jobs, n = [], max(workers, 1)  # every n-th scene of a split per job
        for split, count in (("train", num_train), ("val", num_val)):
            (tmp / split / "images").mkdir(parents=True)
            (tmp / split / "labels").mkdir(parents=True)
            jobs += [(tmp, split, range(k, count, n), seed, height, width) for k in range(n)]
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                for done in [pool.submit(_write_scenes, *job) for job in jobs]:
                    done.result()
        else:
            for job in jobs:
                _write_scenes(*job)
        (tmp / "toy.json").write_text(json.dumps(_generation_record(num_train, num_val, resolution, seed), indent=1))
    return True


# ----------------------------------------------------------------------------------------- reading
def read_classes_file(path: Path) -> ClassInfo:
    try:
        data = json.loads(path.read_text())
        names = [str(n) for n in data["names"]]
        palette = np.asarray(data["palette"], dtype=np.int64)
        ignore = int(data.get("ignore_index", IGNORE_INDEX))
    except FileNotFoundError:
        raise InputError(f"{path}: classes file missing") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a valid classes file ({exc})") from None
    if palette.shape != (len(names), 3) or palette.min() < 0 or palette.max() > 255:
        raise InputError(f"{path}: palette must be {len(names)} RGB triples in [0, 255], got shape {palette.shape}")
    return ClassInfo(names=tuple(names), palette=palette.astype(np.uint8), ignore_index=ignore, source=str(path))


@register_dataset("toy")
class ToyDataset(SegmentationDataset):
    """Reads a dataset in the layout above; resizes to ``resolution`` (bilinear image, nearest mask)."""

    def __init__(self, root: str | os.PathLike, split: str = "train", resolution: tuple[int, int] | None = None):
        self.root = Path(root)
        self.split = split
        if not (self.root / "toy.json").is_file():
            raise InputError(
                f"{self.root}: no toy dataset here (toy.json missing); run `scpdiff prepare-data --benchmark toy ...` first"
            )
        self.classes = read_classes_file(self.root / "classes.json")
        image_dir = self.root / split / "images"
        if not image_dir.is_dir():
            raise InputError(f"{image_dir}: split {split!r} not found")
        self.image_paths = sorted(image_dir.glob("*.png"))
        if not self.image_paths:
            raise InputError(f"{image_dir}: no images")
        self.label_dir = self.root / split / "labels"
        record = json.loads((self.root / "toy.json").read_text())
        native = tuple(int(v) for v in record["resolution"])
        self.resolution = tuple(int(v) for v in resolution) if resolution is not None else native

    def __len__(self) -> int:
        return len(self.image_paths)

    def source_mask(self, index: int) -> np.ndarray:
        """The label map as stored (its native size), SegmentationDataset.source_mask."""
        lpath = self.label_dir / self.image_paths[index].name
        try:
            with Image.open(lpath) as lm:
                return np.asarray(lm, dtype=np.int64)
        except (FileNotFoundError, OSError) as exc:
            raise InputError(f"{lpath}: unreadable label ({exc})") from None

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        ipath = self.image_paths[index]
        lpath = self.label_dir / ipath.name
        try:
            with Image.open(ipath) as im:
                image = im.convert("RGB")
            with Image.open(lpath) as lm:
                if lm.mode not in ("L", "P"):
                    raise InputError(f"{lpath}: label image must be 8-bit single channel, got mode {lm.mode}")
                label = lm.copy()
        except FileNotFoundError as exc:
            raise InputError(f"{exc.filename}: missing") from None
        except OSError as exc:
            raise InputError(f"{ipath.name}: unreadable image or label ({exc})") from None
        if image.size != label.size:
            raise InputError(f"{lpath}: label size {label.size} differs from image size {image.size}")
        h, w = self.resolution
        if image.size != (w, h):
            image = image.resize((w, h), Image.BILINEAR)
            if self.label_resize == "bilinear":  # the defect knob (scpdiff.datasets.folders)
                ids = np.asarray(label, dtype=np.int64)
                box = (0.0, 0.0, float(ids.shape[1]), float(ids.shape[0]))
                mask = bilinear_label_resize(ids, box, (h, w), self.num_classes, self.ignore_index)
                return np.asarray(image, dtype=np.uint8), mask, ipath.stem
            label = label.resize((w, h), Image.NEAREST)
        return np.asarray(image, dtype=np.uint8), np.asarray(label, dtype=np.int64), ipath.stem
