"""The mask condition given to ControlNet: a colour-coded label map (the dataset's palette).

The paper (section 3.1, following ControlNet) conditions the control branch on the semantic mask
rendered as an RGB image. This module is the one place where a label map becomes that image, so
training and sampling can never disagree on the encoding.

Encoding: label ``c`` in ``[0, C)`` -> ``palette[c] / 255`` (float in [0, 1], channels first);
the ignore label (and any label without a palette entry at or above ``C``) -> black (0, 0, 0).

Which palette (the protocol knob ``condition_colours``, docs/protocol.md): the dataset's own
(``train_id_palette``, :mod:`scpdiff.datasets.class_tables`) or the colours the official code
conditioned on (``official_colour_maps``, kept as data in ``scpdiff/data/official_condition_colours.csv``
with its source), which a ControlNet fine-tuned by the authors expects. :func:`condition_palette`
picks it; :func:`encode_mask` is the one place a label map becomes the condition image.

How it reaches the benchmark resolution (the protocol knob ``condition_resize``): ``nearest``
colour-codes the label map already resized (nearest, every edge a hard class edge);
``bilinear_antialias`` colour-codes the label map at its stored size and resizes the colour image
like a photograph, as the official loaders do (torchvision ``Resize``, bilinear with antialiasing:
datasets/cityscapes.py:78-80, datasets/ade20k.py:54-56, datasets/cocostuff.py:53-55), which softens
every class edge into blended colours (:func:`conditions_from_sources`).
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

import numpy as np
import torch

from ..errors import InputError

CONDITION_COLOURS = ("official_colour_maps", "train_id_palette")
OFFICIAL_COLOURS_FILE = "official_condition_colours.csv"


@functools.cache
def official_condition_colours() -> dict[str, np.ndarray]:
    """Dataset kind -> uint8 ``[C, 3]`` condition colours of the official code (the data file)."""
    text = resources.files("scpdiff.data").joinpath(OFFICIAL_COLOURS_FILE).read_text()
    rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r["dataset"], []).append((int(r["class_id"]), int(r["r"]), int(r["g"]), int(r["b"])))
    tables = {}
    for kind, entries in out.items():
        entries.sort()
        if [e[0] for e in entries] != list(range(len(entries))):
            raise AssertionError(f"{OFFICIAL_COLOURS_FILE}: {kind} class ids must be 0..C-1, each once")
        tables[kind] = np.array([e[1:] for e in entries], dtype=np.uint8)
    return tables


def condition_palette(dataset_kind: str, palette, colours: str = "train_id_palette") -> np.ndarray:
    """The palette the condition is drawn with: ``palette`` (the dataset's) or, for
    ``official_colour_maps``, the official colours of ``dataset_kind`` (datasets the official code
    does not have, such as the toy, keep their own)."""
    if colours not in CONDITION_COLOURS:
        raise InputError(f"unknown condition colours {colours!r}; known: {list(CONDITION_COLOURS)}")
    own = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    official = official_condition_colours().get(dataset_kind)
    if colours == "train_id_palette" or official is None:
        return own
    if len(official) != len(own):
        raise InputError(f"{OFFICIAL_COLOURS_FILE}: {len(official)} {dataset_kind} colours for {len(own)} classes")
    return official


def palette_lookup_table(palette: np.ndarray | list, num_labels: int = 256) -> torch.Tensor:
    """A ``[num_labels, 3]`` float table in [0, 1]; rows past the palette are black (ignore)."""
    pal = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    if pal.shape[0] > num_labels:
        raise InputError(f"palette has {pal.shape[0]} colours, more than {num_labels} labels")
    table = np.zeros((num_labels, 3), dtype=np.float32)
    table[: pal.shape[0]] = pal / 255.0
    return torch.from_numpy(table)


def encode_mask(masks: torch.Tensor | np.ndarray, palette, ignore_index: int = 255) -> torch.Tensor:
    """Colour-code integer masks ``[B, H, W]`` (or ``[H, W]``) into ``[B, 3, H, W]`` float32 in [0, 1].

    Labels must lie in ``[0, len(palette))`` or equal ``ignore_index`` (rendered black).
    """
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise InputError(f"masks must be [B, H, W], got shape {tuple(m.shape)}")
    m = m.long()
    n = len(np.asarray(palette).reshape(-1, 3))
    bad = (m < 0) | ((m >= n) & (m != ignore_index))
    if bool(bad.any()):
        labels = torch.unique(m[bad]).tolist()[:10]
        raise InputError(f"mask labels {labels} are outside [0, {n}) and not the ignore label {ignore_index}")
    table = palette_lookup_table(palette, num_labels=max(256, ignore_index + 1, n)).to(m.device)
    return table[m].permute(0, 3, 1, 2).contiguous()


def conditions_from_sources(source_masks, palette, size: tuple[int, int], ignore_index: int = 255) -> torch.Tensor:
    """``condition_resize: bilinear_antialias``: each label map (class ids at its stored size, any
    size) colour-coded by :func:`encode_mask`, then resized to ``size`` = (H, W) with torchvision's
    bilinear antialiased ``Resize``; ``[B, 3, H, W]`` float32 in [0, 1]. A map already at ``size``
    is colour-coded only."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    out = []
    for mask in source_masks:
        image = encode_mask(mask, palette, ignore_index)[0]
        if tuple(image.shape[-2:]) != tuple(size):
            image = resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
        out.append(image)
    return torch.stack(out)
