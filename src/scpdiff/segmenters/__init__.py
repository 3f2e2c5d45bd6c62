"""Evaluation segmenters behind one interface, by name (the OASIS protocol networks and the toy one).

    seg = scpdiff.segmenters.load_segmenter("drn_d_105", checkpoint="drn-d-105_ms_cityscapes.pth", device="cuda")
    labels = seg.predict(images)   # images: uint8 [B, H, W, 3] RGB -> int64 [B, h, w] at seg.label_size

Each segmenter keeps its own preprocessing and multi-scale recipe with it.
"""

from __future__ import annotations

from typing import Callable

from ..registry import Registry

SEGMENTERS: Registry[Callable] = Registry("segmenter", {
    "toy": "scpdiff.segmenters.toy",
    "drn_d_105": "scpdiff.segmenters.drn",
    "upernet_101": "scpdiff.segmenters.upernet",
    "deeplabv2": "scpdiff.segmenters.deeplabv2",
    # optional extra (needs mmsegmentation); not an OASIS-protocol network
    "mmseg_upernet_r101": "scpdiff.segmenters.mmseg_models",
})


def register_segmenter(name: str):
    """Decorator for a loader ``f(checkpoint, device="cpu", **kw) -> Segmenter`` (a name is taken once)."""
    return SEGMENTERS.register(name)


def load_segmenter(kind: str, checkpoint=None, device="cpu", **kwargs):
    return SEGMENTERS.get(kind)(checkpoint, device=device, **kwargs)
