"""Splitting a run of ``n`` items into ``num_shards`` contiguous jobs (encoding, generation).

Shard ``i`` gets items ``[i*n // N, (i+1)*n // N)``: sizes differ by at most one, every item is in
exactly one shard, and the shards concatenate back to ``range(n)`` in order.
"""

from __future__ import annotations

from ..errors import InputError


def shard_bounds(n: int, shard: int, num_shards: int) -> tuple[int, int]:
    """``(start, stop)`` of shard ``shard`` of ``num_shards`` over ``n`` items."""
    if num_shards < 1:
        raise InputError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise InputError(f"--shard must lie in [0, {num_shards}), got {shard}")
    return shard * n // num_shards, (shard + 1) * n // num_shards
