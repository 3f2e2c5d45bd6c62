"""Evaluation segmenters behind one interface, by name (the OASIS protocol networks and the toy one).

    seg = scpdiff.segmenters.load_segmenter("drn_d_105", checkpoint="drn-d-105_ms_cityscapes.pth", device="cuda")
    labels = seg.predict(images)   # images: uint8 [B, H, W, 3] RGB -> int64 [B, h, w] at seg.label_size

Each segmenter keeps its own preprocessing and multi-scale recipe with it. ``backend="mmseg"``
runs the protocol segmenters through mmsegmentation instead (segmenters/README.md says when).
"""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
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


# The routes other than plain torch: a loader f(kind, checkpoint, device="cpu", **recipe_options)
# per backend, imported on first use (the mmseg one needs the extra).
BACKEND_LOADERS: Registry[Callable] = Registry("segmenter backend", {"mmseg": "scpdiff.segmenters.mmseg_models"})
BACKENDS = ("torch", "mmseg")


def load_segmenter(kind: str, checkpoint=None, device="cpu", backend: str = "torch", **kwargs):
    """The segmenter ``kind`` with its published weights and recipe options ``kwargs``.

    ``backend``: ``torch`` (the plain modules and recipes) or ``mmseg`` (the same protocol
    networks and recipes as mmseg segmentors, run through mmseg's ``test_step``; needs the
    ``mmseg`` extra). Both give the same labels (tests/test_segmenters_mmseg.py).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"segmenter backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "mmseg" and kind != "mmseg_upernet_r101":
        return BACKEND_LOADERS.get("mmseg")(kind, checkpoint, device=device, **kwargs)
    return SEGMENTERS.get(kind)(checkpoint, device=device, **kwargs)
