"""Seeded draws with replacement, made the way the official SCP-Diff code makes them.

The official code draws reference images (noise_prior.py:54,117, seed 42) and FID label maps
(noise_prior_inference.py:240, the script's seed 4) with Python's ``random.choices`` on a freshly
seeded ``random``; the same call with the same seed over the same index order gives the same draw.

    draw_with_replacement(2975, 10000, seed=42)    # 10,000 indices in [0, 2975)
"""

from __future__ import annotations

import random


def draw_with_replacement(population: int, k: int, seed: int) -> list[int]:
    """``k`` indices of ``range(population)`` drawn with replacement by ``random.Random(seed).choices``."""
    return random.Random(int(seed)).choices(range(int(population)), k=int(k))
