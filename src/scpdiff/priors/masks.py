"""Label masks to the latent grid (paper section 4.2: "downscale M to M' through nearest pixel
selection, employing a scale factor of H/H'").

``nearest`` (the paper's rule, the default) keeps the label at the top-left pixel of each
``s x s`` block, ``M'[y, x] = M[s*y, s*x]`` with ``s = H / h``, which is what
``torch.nn.functional.interpolate(mode="nearest")`` selects for an integer factor.
``majority`` (an option) keeps the most frequent label of each block, counting the ignore label
only where the whole block is ignore; ties go to the smaller label id.
"""

from __future__ import annotations

import torch

from ..errors import InputError

DOWNSAMPLE_MODES = ("nearest", "majority")


def scale_factor(mask_hw: tuple[int, int], latent_hw: tuple[int, int]) -> int:
    """The integer factor ``s = H / h = W / w``; anything else is an error."""
    (H, W), (h, w) = mask_hw, latent_hw
    if H % h or W % w or H // h != W // w:
        raise InputError(
            f"mask size {H}x{W} is not an integer multiple (the same on both axes) of the latent grid {h}x{w}"
        )
    return H // h


def downsample_mask(
    masks: torch.Tensor, latent_hw: tuple[int, int], mode: str = "nearest", ignore_index: int = 255
) -> torch.Tensor:
    """``[B, H, W]`` integer masks -> ``[B, h, w]`` int64 labels on the latent grid."""
    if masks.ndim != 3:
        raise InputError(f"masks must be [B, H, W], got shape {tuple(masks.shape)}")
    s = scale_factor(tuple(masks.shape[-2:]), latent_hw)
    if s == 1:
        return masks.long()
    if mode == "nearest":
        # select before widening: converting the full-size mask to int64 first costs more than the fit
        return masks[:, ::s, ::s].long()
    masks = masks.long()
    if mode != "majority":
        raise InputError(f"unknown mask downsampling mode {mode!r}; expected one of {DOWNSAMPLE_MODES}")
    B = masks.shape[0]
    h, w = latent_hw
    blocks = masks.view(B, h, s, w, s).permute(0, 1, 3, 2, 4).reshape(B * h * w, s * s)
    num_labels = int(max(int(blocks.max()), ignore_index)) + 1
    out = torch.empty(B * h * w, dtype=torch.long)
    # One image's worth of blocks at a time keeps the count table small.
    step = h * w
    for start in range(0, B * h * w, step):
        blk = blocks[start : start + step]
        n = blk.shape[0]
        rows = torch.arange(n).repeat_interleave(s * s)
        counts = torch.bincount(rows * num_labels + blk.reshape(-1), minlength=n * num_labels).view(n, num_labels)
        all_ignore = counts[:, ignore_index] == s * s
        counts[:, ignore_index] = 0
        best = counts.argmax(dim=1)  # argmax returns the first maximum: ties -> smaller label
        best[all_ignore] = ignore_index
        out[start : start + n] = best
    return out.view(B, h, w)
