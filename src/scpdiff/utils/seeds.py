"""Per-image seeds: an image's noise depends on (setting, image index, base seed) only.

Every image has its own ``torch.Generator`` (on the CPU, so CPU and GPU runs draw the same numbers)
seeded by :func:`image_seed` from (setting, image index, base seed) through a stable hash, so
an image does not depend on the batch or shard it is generated in. Per image, the generator gives
first the prior draw and then the noise ``eps`` of Eq. 6.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch


def image_seed(setting: str, index: int, base_seed: int = 0) -> int:
    """A 63-bit seed from (setting, image index, base seed): SHA-256, stable across runs and machines."""
    digest = hashlib.sha256(f"{setting}\x1f{int(index)}\x1f{int(base_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def image_generators(setting: str, indices: Sequence[int], base_seed: int = 0) -> list[torch.Generator]:
    """One CPU generator per image, seeded by :func:`image_seed`."""
    return [torch.Generator("cpu").manual_seed(image_seed(setting, i, base_seed)) for i in indices]
