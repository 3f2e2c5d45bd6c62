"""Gathering Fig. 7's rows: label maps of the validation split, their real images, and the image
each prior generated for them (``generate`` names files ``{name}.png`` or ``{name}_{k:02d}.png``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..datasets.folders import read_rgb_array
from ..errors import InputError
from .plots import SampleRow


def parse_sample_dirs(items: Sequence[str]) -> dict[str, Path]:
    """``["normal=DIR", ...]`` -> ``{"normal": Path(DIR)}`` (order kept; folders must exist)."""
    dirs: dict[str, Path] = {}
    for item in items:
        prior, sep, folder = item.partition("=")
        if not sep or not prior or not folder:
            raise InputError(f"--samples {item!r}: expected PRIOR=DIR")
        if not Path(folder).is_dir():
            raise InputError(f"--samples {item!r}: {folder} is not a folder")
        dirs[prior] = Path(folder)
    return dirs


def generated_image(folder: Path, name: str) -> Path | None:
    """The image generated for label map ``name`` in ``folder`` (the first repeat if several)."""
    exact = folder / f"{name}.png"
    if exact.is_file():
        return exact
    repeats = sorted(folder.glob(f"{name}_[0-9][0-9].png"))
    return repeats[0] if repeats else None


def dataset_names(ds) -> list[str] | None:
    """The label map names of a dataset in its order, when it knows them without reading files."""
    names = getattr(ds, "names", None)
    if names is not None and not callable(names):
        return list(names)
    paths = getattr(ds, "image_paths", None)
    if paths is not None:
        return [Path(p).stem for p in paths]
    return None


def mask_colours(ds, mask: np.ndarray) -> np.ndarray:
    """A label mask of ``ds`` in its palette's colours, uint8 ``[H, W, 3]`` (the ControlNet input)."""
    from ..models.conditioning import encode_mask

    colour = encode_mask(mask, ds.classes.palette, ds.ignore_index)[0]
    return (colour.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def open_validation_split(bench):
    """The benchmark's validation split at its resolution (the label maps samples are made from)."""
    from ..datasets import open_dataset

    ds_cfg = bench["dataset"]
    return open_dataset(ds_cfg["kind"], root=ds_cfg["root"], split=ds_cfg.get("val_split", "val"),
                        resolution=bench.resolution)


def load_sample_rows(bench, sample_dirs: Mapping[str, str | os.PathLike], rows: int) -> list[SampleRow]:
    """The first ``rows`` validation label maps (in dataset order) that the first prior generated."""
    dirs = {p: Path(d) for p, d in sample_dirs.items()}
    if not dirs:
        raise InputError("no sample folders given")
    first = next(iter(dirs.values()))
    ds = open_validation_split(bench)
    names = dataset_names(ds)
    indices = range(len(ds)) if names is None else range(len(names))
    out: list[SampleRow] = []
    for i in indices:
        if len(out) >= rows:
            break
        if names is not None and generated_image(first, names[i]) is None:
            continue
        image, mask, name = ds[i]
        if generated_image(first, name) is None:
            continue
        samples = {}
        for prior, folder in dirs.items():
            path = generated_image(folder, name)
            samples[prior] = read_rgb_array(path) if path is not None else None
        out.append(SampleRow(name=name, mask_rgb=mask_colours(ds, mask), image=image, samples=samples))
    if not out:
        raise InputError(f"{first}: no generated image is named after a label map of the validation split")
    return out
