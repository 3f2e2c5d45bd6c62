"""The mask condition given to ControlNet: a colour-coded label map (the dataset's palette).

The paper (section 3.1, following ControlNet) conditions the control branch on the semantic mask
rendered as an RGB image. This module is the one place where a label map becomes that image, so
training and sampling can never disagree on the encoding.

Encoding: label ``c`` in ``[0, C)`` -> ``palette[c] / 255`` (float in [0, 1], channels first);
the ignore label (and any label without a palette entry at or above ``C``) -> black (0, 0, 0).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


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
