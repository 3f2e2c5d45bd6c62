"""Shared machinery of the readers for datasets stored as image files beside label-map files.

A :class:`FolderDataset` holds a sorted list of :class:`Sample` paths, built once from one glob per
folder, and decodes a pair only when it is indexed. Each item goes through the same steps:

1. the mask's size must equal its image's (checked from the file headers before decoding);
2. every stored mask value must be one the dataset defines (checked at full resolution, so no
   bad pixel can be lost to resizing);
3. image and mask are brought to the benchmark resolution ``(H, W)``:

   - ``fit="stretch"`` (default, what the paper does; for COCO-Stuff it names the distortion as
     its weak point): the whole picture is resized to ``(H, W)``, changing its aspect ratio;
   - ``fit="center_crop"``: the largest centred window with the target aspect ratio is cut out and
     resized, keeping the aspect ratio and losing the borders;

   images are resampled with PIL's bicubic filter, which widens its kernel by the scale factor when
   shrinking (an antialiased, area-like reduction); masks with nearest neighbour (each target
   pixel takes the source pixel under its centre, :func:`nearest_resize`), so no new label
   values appear;
4. stored values become class ids through the dataset's :class:`~.class_tables.LabelTable`.

The protocol knob ``label_resize: bilinear`` (a defect of the official code, which no preset turns
on; docs/protocol.md) replaces step 3's nearest mask resampling by what the official loaders do to
their integer label maps (datasets/cityscapes.py:78,89; datasets/ade20k.py:54,60;
datasets/cocostuff.py:53,59): torchvision's ``Resize`` (bilinear, antialiased) of the class ids,
which blends neighbouring ids at every boundary into other ids (:func:`bilinear_label_resize`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from .base import ClassInfo, SegmentationDataset
from .class_tables import LabelTable

FITS = ("stretch", "center_crop")
# label-image modes holding one integer per pixel; 'P' keeps the palette index, which is the label
_LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")
# image modes read as RGB (read_rgb); alpha modes only when fully opaque
_RGB_MODES = ("RGB", "L", "P", "CMYK", "YCbCr", "RGBA", "LA", "PA")


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    name: str


def require_dir(path: Path, what: str, hint: str = "") -> Path:
    """Return ``path`` if it is a folder; otherwise raise an :class:`InputError` saying what was expected."""
    if not path.is_dir():
        msg = f"{what}: folder {path} does not exist"
        if path.parent.is_dir():
            present = sorted(p.name for p in path.parent.iterdir() if p.is_dir())[:12]
            msg += f" (found in {path.parent}: {present or 'no folders'})"
        raise InputError(msg + (f"; {hint}" if hint else ""))
    return path


def pair_images_with_masks(
    images: Iterable[Path],
    masks: Iterable[Path],
    mask_for: Callable[[Path], Path],
    name_for: Callable[[Path], str],
    what: str,
) -> list[Sample]:
    """Pair each image with the mask ``mask_for(image)``, which must be among ``masks``.

    ``images`` and ``masks`` are the results of one glob each (no per-file ``stat``). Masks without
    an image are ignored (some releases ship extra annotations); an image without its mask is an error.
    """
    images = sorted(images)
    if not images:
        raise InputError(f"{what}: the split is empty (no image files found)")
    mask_set = set(masks)
    samples, missing = [], []
    for image in images:
        mask = mask_for(image)
        if mask in mask_set:
            samples.append(Sample(image, mask, name_for(image)))
        else:
            missing.append((image, mask))
    if missing:
        listed = "; ".join(f"{i} (expected {m})" for i, m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{what}: {len(missing)} image(s) without a mask: {listed}{more}")
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:5]
        raise InputError(f"{what}: sample names are not unique: {dup}")
    return samples


def pair_jpg_with_png_of_same_stem(image_dir: Path, mask_dir: Path, what: str) -> list[Sample]:
    """The ADE20K / COCO-Stuff layout: ``image_dir/NAME.jpg`` with its label map ``mask_dir/NAME.png``."""
    return pair_images_with_masks(
        image_dir.glob("*.jpg"),
        mask_dir.glob("*.png"),
        mask_for=lambda image: mask_dir / (image.stem + ".png"),
        name_for=lambda image: image.stem,
        what=what,
    )


def open_image(path: Path) -> Image.Image:
    """Open an image file lazily (header only); an unreadable file is an :class:`InputError` naming it."""
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image file: {exc}") from exc


def png_bit_depth(path: Path) -> int | None:
    """Bits per sample from a PNG's IHDR chunk (PIL reads 16-bit colour PNGs as 8-bit "RGB"), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def _decode(im: Image.Image, path: Path, mode: str | None = None) -> Image.Image:
    """Fully decode ``im`` (a truncated or corrupt file fails here, not later), converted to ``mode``."""
    try:
        im.load()
        return im.convert(mode) if mode and im.mode != mode else im.copy()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot decode image: {exc}") from exc


def read_rgb(path: Path) -> Image.Image:
    """Decode an image file as 8-bit RGB by the rule every command shares (docs/datasets.md):

    RGB is taken as it is; greyscale (L) is replicated to three channels; CMYK and YCbCr JPEGs
    (they occur in ADE20K and COCO) and palette (P) images are converted through PIL's colour
    conversion / their palette; an alpha channel (RGBA, LA, PA, a palette with transparency) is
    accepted only when every pixel is opaque, and then dropped. Refused, naming the file: 16-bit
    images (a 16-bit PNG, PIL modes I;16, I, F: reducing them to 8 bits would need a choice of
    scale that the file does not record) and bilevel or other modes.
    """
    path = Path(path)
    with open_image(path) as im:
        depth = png_bit_depth(path) if (im.format or "").upper() == "PNG" else None
        if depth == 16 or im.mode.startswith("I") or im.mode == "F":
            raise InputError(f"{path}: {depth or 'high'}-bit image (PIL mode {im.mode}); scpdiff reads 8-bit "
                             "images only (save it with 8 bits per channel)")
        if im.mode not in _RGB_MODES:
            raise InputError(f"{path}: image mode {im.mode} is not one scpdiff reads "
                             f"(expected one of {', '.join(_RGB_MODES)})")
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        if not has_alpha:
            return _decode(im, path, "RGB")
        rgba = _decode(im, path, "RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if int(alpha.min()) < 255:
        raise InputError(f"{path}: image has {int((alpha < 255).sum())} transparent pixel(s); the colour under "
                         "them is undefined (save it without transparency)")
    return rgba.convert("RGB")


def read_rgb_array(path: Path) -> np.ndarray:
    """:func:`read_rgb` as a writable uint8 ``[H, W, 3]`` array (``torch.from_numpy`` may share it)."""
    return np.array(read_rgb(Path(path)), dtype=np.uint8)


def read_label_map(path: Path) -> np.ndarray:
    """Decode a single-channel label image into an integer array ``[H, W]`` of stored values.

    Modes L (8-bit ids), P (the palette index is the id; the colours are ignored) and I;16 / I
    (16- or 32-bit ids, kept as integers, never scaled) are read; the caller checks the range.
    Colour (RGB, RGBA), grey+alpha, bilevel and float images are refused.
    """
    path = Path(path)
    with open_image(path) as im:
        if im.mode not in _LABEL_MODES:
            raise InputError(
                f"{path}: expected a single-channel label image (PIL mode L, P or I), got mode {im.mode}"
                " (a colour visualisation rather than the label-id file?)"
            )
        arr = np.asarray(_decode(im, path))
    return arr.astype(np.int64) if arr.dtype != np.uint8 else arr


def check_label_range(stored: np.ndarray, num_classes: int, ignore_index: int, source: str) -> None:
    """Class ids must lie in ``[0, num_classes)`` or equal ``ignore_index``; else an error naming ``source``."""
    if stored.size == 0:
        return
    bad = ((stored < 0) | (stored >= num_classes)) & (stored != ignore_index)
    if bool(bad.any()):
        values = np.unique(stored[bad]).tolist()
        raise InputError(f"{source}: {int(bad.sum())} pixel(s) with label(s) {values[:10]} outside "
                         f"[0, {num_classes}) that are not the ignore label {ignore_index}")


def crop_box(size_wh: tuple[int, int], resolution: tuple[int, int], fit: str) -> tuple[float, float, float, float]:
    """The source window ``(left, top, right, bottom)`` that ``fit`` maps onto ``resolution`` = (H, W)."""
    w, h = size_wh
    if fit == "stretch":
        return (0.0, 0.0, float(w), float(h))
    if fit != "center_crop":
        raise InputError(f"unknown fit {fit!r}; expected one of {FITS}")
    th, tw = resolution
    target_aspect = tw / th
    if w / h > target_aspect:  # too wide: cut the sides
        cw = h * target_aspect
        return ((w - cw) / 2, 0.0, (w + cw) / 2, float(h))
    ch = w / target_aspect  # too tall: cut top and bottom
    return (0.0, (h - ch) / 2, float(w), (h + ch) / 2)


def fit_pair(
    image: Image.Image, stored: np.ndarray, resolution: tuple[int, int] | None, fit: str
) -> tuple[np.ndarray, np.ndarray]:
    """Resize (and maybe crop) an image and its stored-value mask to ``resolution`` = (H, W)."""
    if resolution is None:
        return np.asarray(image, dtype=np.uint8), stored
    th, tw = resolution
    box = crop_box(image.size, resolution, fit)
    if (image.size == (tw, th)) and box == (0.0, 0.0, float(tw), float(th)):
        return np.asarray(image, dtype=np.uint8), stored
    img = image.resize((tw, th), Image.Resampling.BICUBIC, box=box)
    return np.asarray(img, dtype=np.uint8), nearest_resize(stored, box, resolution)


def nearest_sources(start: float, stop: float, n_out: int, n_in: int) -> np.ndarray:
    """Source index under each of ``n_out`` target pixel centres spread over ``[start, stop)`` (float64)."""
    centres = start + (np.arange(n_out, dtype=np.float64) + 0.5) * ((stop - start) / n_out)
    # a centre exactly on a pixel border belongs to the pixel after it; the tolerance keeps float
    # error from moving it back (centres are rationals with denominator 2H or 2W, so a centre not
    # on a border is at least 1/(2 max(H, W)) >> 1e-6 away from one)
    return np.clip(np.floor(centres + 1e-6).astype(np.int64), 0, n_in - 1)


def nearest_resize(mask: np.ndarray, box: tuple[float, float, float, float], resolution: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of the window ``box`` of ``mask`` to ``resolution`` = (H, W).

    Each target pixel takes the source pixel containing its centre (the rule of torch's
    ``nearest-exact``), computed in float64: PIL's and torch's float32 coordinates pick a
    neighbouring row or column at some ratios.
    """
    left, top, right, bottom = box
    h, w = mask.shape
    rows = nearest_sources(top, bottom, resolution[0], h)
    cols = nearest_sources(left, right, resolution[1], w)
    return mask[rows[:, None], cols[None, :]]


def bilinear_label_resize(ids: np.ndarray, box: tuple[float, float, float, float], resolution: tuple[int, int],
                          num_classes: int, ignore_index: int) -> np.ndarray:
    """Class ids ``ids`` (window ``box``) resized to ``resolution`` = (H, W) as the official code resizes
    its label maps: torchvision ``Resize`` (bilinear, antialias) of the uint8 ids, rounded back to
    integers. A blend of two ids is another id (the defect); a blend that names no class (between a
    class and the ignore label) becomes the ignore label, which our class tables can hold (the
    official 256-slot tables give such values statistics of their own)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    if int(ids.max(initial=0)) > 255:
        raise InputError(f"bilinear label resizing works on 8-bit ids, got id {int(ids.max())}")
    left, top, right, bottom = (int(round(v)) for v in box)
    window = torch.from_numpy(np.ascontiguousarray(ids[top:bottom, left:right], dtype=np.uint8))[None]
    out = resize(window, list(resolution), interpolation=InterpolationMode.BILINEAR, antialias=True)[0]
    out = out.numpy().astype(np.int64)
    out[(out >= num_classes) & (out != ignore_index)] = ignore_index
    return out


class FolderDataset(SegmentationDataset):
    """A :class:`SegmentationDataset` over pre-indexed (image, mask) file pairs, decoded lazily."""

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: ClassInfo,
        labels: LabelTable,
        split: str,
        resolution: Sequence[int] | None,
        fit: str = "stretch",
    ):
        if fit not in FITS:
            raise InputError(f"unknown fit {fit!r}; expected one of {FITS}")
        if resolution is not None:
            if len(resolution) != 2 or min(int(r) for r in resolution) <= 0:
                raise InputError(f"resolution must be (H, W) with positive sizes, got {resolution!r}")
            resolution = (int(resolution[0]), int(resolution[1]))
        self.samples = list(samples)
        self.classes = classes
        self.labels = labels
        self.split = split
        self.resolution = resolution
        self.fit = fit

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def _checked_mask(self, s: Sample) -> np.ndarray:
        """The stored values of ``s.mask`` at full size, after the size and label checks."""
        with open_image(s.image) as im_head, open_image(s.mask) as mask_head:
            if im_head.size != mask_head.size:
                raise InputError(
                    f"{s.mask}: mask is {mask_head.size[0]}x{mask_head.size[1]} (WxH) but its image "
                    f"{s.image} is {im_head.size[0]}x{im_head.size[1]}"
                )
        stored = read_label_map(s.mask)
        self.labels.check(stored, str(s.mask))
        return stored

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        s = self.samples[index]
        stored = self._checked_mask(s)
        image, resized = fit_pair(read_rgb(s.image), stored, self.resolution, self.fit)
        return image, self._class_ids(stored, resized), s.name

    def _class_ids(self, stored: np.ndarray, resized: np.ndarray) -> np.ndarray:
        """The class ids at the benchmark resolution: ``resized`` (nearest) looked up, or under
        ``label_resize: bilinear`` the full-size ids blended (:func:`bilinear_label_resize`)."""
        if self.label_resize != "bilinear" or self.resolution is None or stored.shape == resized.shape:
            return self.labels.lookup[resized]
        h, w = stored.shape
        return bilinear_label_resize(self.labels.lookup[stored], crop_box((w, h), self.resolution, self.fit),
                                     self.resolution, self.num_classes, self.ignore_index)

    def source_mask(self, index: int) -> np.ndarray:
        """The class ids at the stored size, cut to the window ``fit`` maps (SegmentationDataset)."""
        stored = self._checked_mask(self.samples[index])
        if self.resolution is None:
            return self.labels.lookup[stored]
        h, w = stored.shape
        left, top, right, bottom = (int(round(v)) for v in crop_box((w, h), self.resolution, self.fit))
        return self.labels.lookup[stored[top:bottom, left:right]]

    def load_mask(self, index: int) -> tuple[np.ndarray, str]:
        """``(mask, name)`` exactly as :meth:`load` returns them, without decoding the image (cheap scans)."""
        if index < 0:
            index += len(self)
        s = self.samples[index]
        stored = self._checked_mask(s)
        resized = stored
        if self.resolution is not None:
            h, w = stored.shape
            resized = nearest_resize(stored, crop_box((w, h), self.resolution, self.fit), self.resolution)
        return self._class_ids(stored, resized), s.name
