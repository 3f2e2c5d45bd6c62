"""Streaming Gaussian moments: count, sum and sum of squares in float64, merged by addition.

Sums are exact to float64 round-off whatever the order or sharding of the data, which is what makes
``merge`` of shard fits equal one fit over everything. Population variance (1/N, as in Eq. 5).
"""

from __future__ import annotations

import torch


def mean_var(count: torch.Tensor, total: torch.Tensor, total_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance from moments; ``count`` broadcasts against the sums.

    Where ``count`` is 0 both are NaN: the caller decides the fallback.
    """
    n = count.to(torch.float64)
    mean = total / n
    var = (total_sq / n - mean * mean).clamp_min(0.0)
    return mean, var


def grouped_sums(x: torch.Tensor, group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group count ``[G]``, channel sums and sums of squares ``[G, channels, h, w]`` or ``[G, channels]``.

    ``x``: float64 ``[B, channels, h, w]``; ``group``: int64 ``[B, h, w]`` in ``[0, num_groups]`` where the
    value ``num_groups`` marks tokens to drop (ignored labels). Uses ``bincount`` over one flat index per
    element so the whole batch is one pass per moment.
    """
    B, ch, h, w = x.shape
    hw = h * w
    pos = torch.arange(hw, dtype=torch.int64).view(1, hw)
    g = group.reshape(B, hw)
    cell = g * hw + pos  # [B, hw]: (group, y, x)
    count = torch.bincount(cell.reshape(-1), minlength=(num_groups + 1) * hw)[: num_groups * hw]
    # element index (group, channel, y, x) in the canonical [G, channels, h, w] layout
    idx = (g * (ch * hw) + pos).unsqueeze(1) + (torch.arange(ch, dtype=torch.int64) * hw).view(1, ch, 1)
    idx = idx.reshape(-1)
    flat = x.reshape(B, ch, hw).reshape(-1)
    size = (num_groups + 1) * ch * hw
    total = torch.bincount(idx, weights=flat, minlength=size)[: num_groups * ch * hw]
    total_sq = torch.bincount(idx, weights=flat * flat, minlength=size)[: num_groups * ch * hw]
    return count.view(num_groups, h, w), total.view(num_groups, ch, h, w), total_sq.view(num_groups, ch, h, w)
