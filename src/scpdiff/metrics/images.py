"""Folders of images to score, matched to their label maps by file name.

Generated images are named ``{name}.png`` (one per label map) or ``{name}_{k:02d}.png`` (sample
``k`` of label map ``name``, for diversity); ``name`` is the label map's file stem. Images of other
SIS methods only need the same naming; a name that could be read both ways is never guessed
(:func:`match_images`). Every file is checked (decodable, mode, bit depth, size, label range) before
any network runs (:mod:`scpdiff.datasets.input_checks`), so a bad folder fails fast with the file named.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..datasets.folders import read_label_map, read_rgb_array
from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SAMPLE = re.compile(r"^(?P<name>.+)_(?P<k>\d{2,})$")


@dataclass(frozen=True)
class ImageEntry:
    path: Path
    name: str  # the label map this image was generated from
    sample: int | None = None  # k for "{name}_{k:02d}", None for "{name}"


def list_images(dirs: Sequence[str | os.PathLike]) -> list[Path]:
    """All image files in ``dirs`` (e.g. the shards of one setting), sorted; stems must be unique."""
    paths: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise InputError(f"{d}: image folder does not exist")
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not found:
            raise InputError(f"{d}: no images ({', '.join(IMAGE_SUFFIXES)})")
        paths += found
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise InputError(f"{p}: the same image name is also in {seen[p.stem]}")
        seen[p.stem] = p
    return paths


SINGLE, SAMPLES = "{name}.png", "{name}_{k:02d}.png"  # the two namings generate writes (generation.json)


def recorded_naming(dirs: Sequence[str | os.PathLike]) -> str | None:
    """The file naming every folder's ``generation.json`` records (:data:`SINGLE` or :data:`SAMPLES`),
    or None when a folder has no record of it (images of another method) or the folders disagree."""
    import json

    found = set()
    for d in dirs:
        record = Path(d) / "generation.json"
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return None
        naming = data.get("file_names") if isinstance(data, dict) else None
        if naming is None and isinstance(data, dict) and str(data.get("setting", "")).endswith(":diversity"):
            naming = SAMPLES  # records written before file_names: a diversity run names samples
        if naming not in (SINGLE, SAMPLES):
            return None
        found.add(naming)
    return found.pop() if len(found) == 1 else None


def match_images(paths: Iterable[Path], mask_names: set[str] | None, naming: str | None = None,
                 need_groups: bool = False) -> list[ImageEntry]:
    """Give each image its label map: ``{name}`` exactly, else ``{name}_{k}`` with a known ``name``.

    A name is never guessed. With label-map names, ``a_01.png`` is map ``a_01`` or sample 1 of map
    ``a``, whichever exists; both existing is an error. Without them, ``naming`` (from the folders'
    ``generation.json``) decides; when it is unknown and the groups matter (``need_groups``:
    diversity), a name that could be either reading is an error naming the file.
    """
    paths = list(paths)
    entries, unknown = [], []
    ambiguous = []
    for p in paths:
        m = _SAMPLE.match(p.stem)
        if mask_names is not None:
            exact = p.stem in mask_names
            sample = bool(m) and m["name"] in mask_names
            if exact and sample:
                ambiguous.append(f"{p}: could be label map {p.stem!r} or sample {int(m['k'])} of label map {m['name']!r}")
            elif exact:
                entries.append(ImageEntry(p, p.stem))
            elif sample:
                entries.append(ImageEntry(p, m["name"], int(m["k"])))
            else:
                unknown.append(p)
        elif naming == SAMPLES:
            if not m:
                raise InputError(f"{p}: the folder's generation.json says images are named {SAMPLES}, this one is not")
            entries.append(ImageEntry(p, m["name"], int(m["k"])))
        elif naming == SINGLE or not m or not need_groups:
            entries.append(ImageEntry(p, p.stem))
        else:
            ambiguous.append(f"{p}: could be label map {p.stem!r} or sample {int(m['k'])} of label map {m['name']!r}")
    if ambiguous:
        more = f" (and {len(ambiguous) - 1} more)" if len(ambiguous) > 1 else ""
        raise InputError(f"{ambiguous[0]}{more}; file names of the form {{name}}_{{k:02d}} are not guessed: "
                         "pass --masks DIR or --split SPLIT so the label-map names decide, or score a folder "
                         "written by `scpdiff generate` (its generation.json records the naming)")
    if unknown:
        shown = ", ".join(str(p) for p in unknown[:5])
        raise InputError(f"{len(unknown)} image(s) have no label map of the same name ({{name}}.png or "
                         f"{{name}}_{{k:02d}}.png): {shown}{' ...' if len(unknown) > 5 else ''}")
    return entries


def check_coverage(entries: Sequence[ImageEntry], mask_names: set[str], source: str, allow_subset: bool) -> None:
    """Every label map must have an image unless ``allow_subset`` (a partial run would bias FID/mIoU)."""
    covered = {e.name for e in entries}
    missing = sorted(mask_names - covered)
    if missing and not allow_subset:
        raise InputError(
            f"{len(covered)} label maps have images but {source} has {len(mask_names)}: "
            f"no image for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            "(pass --allow-subset to score a subset)"
        )


def resize_labels(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an int label map ``[H, W]`` (the protocol's label downsampling)."""
    if tuple(mask.shape) == tuple(size):
        return mask
    return F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()


class MasksFromDir:
    """Label PNGs ``DIR/{name}.png`` of class ids (single channel, ignore = 255)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: mask folder does not exist")
        self.names = {p.stem for p in self.root.glob("*.png") if not p.name.startswith(".")}
        if not self.names:
            raise InputError(f"{self.root}: no label PNGs")
        self.source = str(self.root)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.png"

    def __call__(self, name: str) -> np.ndarray:
        return read_label_map(self.path(name))


class MasksFromDataset:
    """The benchmark dataset's ground-truth masks, by image name."""

    def __init__(self, dataset, source: str):
        self.dataset = dataset
        names = getattr(dataset, "names", None)
        names = list(names() if callable(names) else names) if names is not None else None
        if names is None:  # readers without a name list: read them once
            names = [dataset[i][2] for i in range(len(dataset))]
        self.index = {n: i for i, n in enumerate(names)}
        self.names = set(self.index)
        self.source = source

    def __call__(self, name: str) -> np.ndarray:
        return self.dataset[self.index[name]][1]


class ScoringImages(Dataset):
    """Decodes images (and their masks) for the scoring pass; runs in DataLoader workers.

    Items: ``image`` uint8 ``[H, W, 3]``; ``fid`` uint8 ``[3, h, w]`` (the Inception's input, already
    resized when the FID resize mode resizes per image); ``mask`` int64 ``[h', w']`` at the
    segmenter's label size (or an empty tensor without masks).
    """

    def __init__(self, entries: Sequence[ImageEntry], fid_resize: Callable[[np.ndarray], np.ndarray] | None = None,
                 masks: Callable[[str], np.ndarray] | None = None, label_size: tuple[int, int] | None = None):
        self.entries = list(entries)
        self.fid_resize = fid_resize
        self.masks = masks
        self.label_size = label_size

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        image = read_rgb_array(e.path)
        item = {"image": torch.from_numpy(image)}
        if self.fid_resize is not None:
            item["fid"] = torch.from_numpy(np.ascontiguousarray(self.fid_resize(image))).permute(2, 0, 1).contiguous()
        if self.masks is not None:
            mask = torch.from_numpy(np.asarray(self.masks(e.name), dtype=np.int64))
            item["mask"] = resize_labels(mask, self.label_size or tuple(image.shape[:2]))
        return item


class DatasetImages(Dataset):
    """The real images of a :class:`SegmentationDataset` as Inception inputs (reference statistics)."""

    def __init__(self, dataset, fid_resize: Callable[[np.ndarray], np.ndarray]):
        self.dataset = dataset
        self.fid_resize = fid_resize

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        image = self.fid_resize(np.asarray(self.dataset[i][0], dtype=np.uint8))
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
