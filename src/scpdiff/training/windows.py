"""Training on random windows: ``training.<stage>.crop: [h, w]`` in image pixels.

One window per batch, at an offset drawn from the step's generator on the latent grid (so a
window of the images and the window of their latents cover the same pixels). LDM trains its
autoencoders on crops of larger images; a convolutional network learns the same filters from a
window at a fraction of a whole image's cost per step.
"""

from __future__ import annotations

import torch


def window_offset(size: tuple[int, int], crop: tuple[int, int], grid: int, generator: torch.Generator) -> tuple[int, int]:
    """A random top-left corner ``(i, j)``, multiples of ``grid``, for a ``crop`` window inside ``size``."""
    return tuple(int(torch.randint(0, (s - c) // grid + 1, (1,), generator=generator, device=generator.device)) * grid
                 for s, c in zip(size, crop))


def cut(x: torch.Tensor, offset: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """``x[..., i:i + h, j:j + w]``."""
    (i, j), (h, w) = offset, crop
    return x[..., i:i + h, j:j + w]


def latent_window(latents: torch.Tensor, crop: tuple[int, int] | None, factor: int, generator: torch.Generator,
                  images: torch.Tensor | None = None):
    """The batch's latents cut to the latent window of the pixel ``crop`` (None: unchanged), and
    ``images`` (pixel-space, e.g. ControlNet conditions) cut to the same pixels; returns both."""
    if crop is None:
        return latents, images
    size = tuple(latents.shape[-2:])
    lat_crop = (crop[0] // factor, crop[1] // factor)
    i, j = window_offset(size, lat_crop, 1, generator)
    latents = cut(latents, (i, j), lat_crop)
    if images is not None:
        images = cut(images, (i * factor, j * factor), tuple(crop))
    return latents, images
