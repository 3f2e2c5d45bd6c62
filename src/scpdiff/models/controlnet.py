"""A ControlNet initialised from a UNet, as ControlNet does it (paper section 3.1, App. A).

The control branch is a copy of the UNet's encoder and middle block; its zero convolutions start at
0, so the controlled model is exactly the base model until training moves them. Only the
conditioning embedding (the hint encoder from mask pixels to latent pixels) is random: ``seed``
seeds it without touching the caller's RNG.

    controlnet = controlnet_from_unet(unet, (16, 32, 96, 256), seed=0)
"""

from __future__ import annotations

from typing import Sequence

from ..utils.torch_state import seeded


def controlnet_from_unet(unet, conditioning_embedding_out_channels: Sequence[int] | None = None, seed: int | None = 0):
    """A :class:`~diffusers.ControlNetModel` copied from ``unet`` (diffusers' ``from_unet``).

    ``conditioning_embedding_out_channels``: None keeps diffusers' (16, 32, 96, 256) (4 levels,
    factor 8, so a mask at image resolution meets SD's latent resolution; ``n`` entries downsample
    ``2 ** (n - 1)`` times, which must be the VAE's factor). ``seed=None`` draws
    from the global RNG.
    """
    from diffusers import ControlNetModel

    kwargs = {}
    if conditioning_embedding_out_channels:
        kwargs["conditioning_embedding_out_channels"] = tuple(conditioning_embedding_out_channels)
    with seeded(seed):
        return ControlNetModel.from_unet(unet, **kwargs)
