"""Seeded draws with replacement, made the way the official SCP-Diff code makes them.

The official code draws reference images (noise_prior.py:54,117, seed 42) and FID label maps
(noise_prior_inference.py:240, the script's seed 4) with Python's ``random.choices`` on a freshly
seeded ``random``; the same call with the same seed over the same index order gives the same draw.

    draw_with_replacement(2975, 10000, seed=42)    # 10,000 indices in [0, 2975)
    quarter_of_split(2975)                         # the official joint prior's 752 images
"""

from __future__ import annotations

import random


def draw_with_replacement(population: int, k: int, seed: int) -> list[int]:
    """``k`` indices of ``range(population)`` drawn with replacement by ``random.Random(seed).choices``."""
    return random.Random(int(seed)).choices(range(int(population)), k=int(k))


def quarter_of_split(population: int, stride: int = 64, groups: int = 16) -> list[int]:
    """The images the official joint prior is fitted on: ``all_indices[i::stride]`` for
    ``i < groups`` (noise_prior.py:189,205-208: 16 worker lists of a batch-size-64 split), i.e.
    every index whose remainder mod 64 is below 16 (a quarter of the split, whatever N), in the
    official order (worker by worker)."""
    indices = range(int(population))
    return [j for i in range(int(groups)) for j in indices[i::int(stride)]]
