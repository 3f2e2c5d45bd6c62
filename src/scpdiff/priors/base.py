"""The noise-prior interface and what every fitted prior shares: streaming sufficient statistics,
label checks, sampling from per-token Gaussians; the file format is :mod:`.file_format`.

A prior is a distribution over the clean latent ``x`` (the paper's N_spatial, N_categorical,
N_joint, Eqs. 5, 7, 8). The sampler noises a draw to step ``mu*T`` with Eq. 6; the prior itself
never sees the diffusion schedule.
"""

from __future__ import annotations

import os
from typing import ClassVar, Sequence

import torch

from ..errors import InputError
from ..latents.shards import PROVENANCE_KEYS, check_same_provenance
from .file_format import save_prior
from .masks import DOWNSAMPLE_MODES, downsample_mask

Generator = torch.Generator | Sequence[torch.Generator] | None


def standard_normal(shape: tuple[int, ...], generator: Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 N(0, I) draws of ``shape``; a list of generators draws image ``i`` from generator ``i``.

    Per-image generators make a batch's draws independent of how the images are batched.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise InputError(f"got {len(generator)} generators for a batch of {shape[0]}")
        parts = [torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=torch.float32) for g in generator]
        return torch.cat([p.to(device) for p in parts])
    gdev = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gdev, dtype=torch.float32).to(device)


class NoisePrior:
    """Base class of every prior variant. Subclasses are registered with ``@register("name")``.

    Class attributes a variant sets:

    - ``needs_fit``: whether ``update`` must see reference latents before ``sample`` (False for
      ``normal`` and ``oracle``).
    - ``requires_latents``: whether ``sample`` needs the paired real latents (``oracle``).
    - ``imported``: its statistics come only from a file made elsewhere (the authors' released
      statistics, ``scpdiff import-priors``), never from ``update`` on reference latents.
    - ``joint_reference``: fitted on the joint prior's reference images (the protocol knob
      ``joint_reference``: under ``quarter_of_split`` the official joint prior's 25 % of the split,
      :func:`scpdiff.utils.draws.quarter_of_split`) rather than on the N drawn reference images.
    """

    name: ClassVar[str] = ""
    needs_fit: ClassVar[bool] = True
    requires_latents: ClassVar[bool] = False
    imported: ClassVar[bool] = False
    joint_reference: ClassVar[bool] = False

    def __init__(
        self,
        num_classes: int,
        latent_shape: Sequence[int],
        *,
        min_count: int | None = None,
        ignore_index: int = 255,
        downsample: str = "nearest",
        ignore_slot: int | None = None,
    ) -> None:
        if int(num_classes) < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        if len(latent_shape) != 3 or any(int(d) < 1 for d in latent_shape):
            raise InputError(f"latent_shape must be (channels, h, w), got {tuple(latent_shape)}")
        if downsample not in DOWNSAMPLE_MODES:
            raise InputError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
        if 0 <= ignore_index < num_classes:
            raise InputError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.min_count = None if min_count is None else int(min_count)
        self.ignore_index = int(ignore_index)
        self.downsample = downsample
        # protocol ignore_labels: fitted_as_class (docs/protocol.md): ignore tokens are the class
        # `ignore_slot` (the official code's 256-slot tables), with statistics of their own
        if ignore_slot is not None and not 0 <= int(ignore_slot) < self.num_classes:
            raise InputError(f"ignore_slot {ignore_slot} is not a class id in [0, {self.num_classes})")
        self.ignore_slot = None if ignore_slot is None else int(ignore_slot)
        self.num_images = 0
        self.num_tokens = 0
        # Provenance written into the file: which VAE, its latent scaling factor, which dataset and
        # image resolution the reference latents came from (scpdiff.latents.shards.PROVENANCE_KEYS).
        self.provenance: dict[str, str] = {key: "" for key in PROVENANCE_KEYS}

    # ----------------------------------------------------------------- input checks
    def latent_labels(self, masks, check: bool = True) -> torch.Tensor:
        """Image-size masks ``[B, H, W]`` -> latent-grid labels ``[B, h, w]`` (int64, CPU).

        Labels must lie in ``[0, num_classes)`` or equal ``ignore_index``; anything else is an error.
        """
        m = torch.as_tensor(masks)
        if m.dtype.is_floating_point or m.dtype == torch.bool:
            raise InputError(f"masks must be an integer tensor, got {m.dtype}")
        m = m.cpu()
        if m.ndim != 3:
            raise InputError(f"masks must be [B, H, W], got shape {tuple(m.shape)}")
        lab = downsample_mask(m, self.latent_shape[1:], self.downsample, self.ignore_index)
        if check:
            bad = ((lab < 0) | (lab >= self.num_classes)) & (lab != self.ignore_index)
            if bool(bad.any()):
                vals = torch.unique(lab[bad]).tolist()[:10]
                raise InputError(
                    f"mask labels {vals} are outside [0, {self.num_classes}) and are not the ignore label "
                    f"{self.ignore_index}"
                )
        if self.ignore_slot is not None:
            lab = torch.where(lab == self.ignore_index, self.ignore_slot, lab)
        return lab

    def _check_latents(self, latents: torch.Tensor, batch: int) -> torch.Tensor:
        x = torch.as_tensor(latents)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.latent_shape:
            raise InputError(f"latents must be [B, {', '.join(map(str, self.latent_shape))}], got {tuple(x.shape)}")
        if x.shape[0] != batch:
            raise InputError(f"{x.shape[0]} latents but {batch} masks")
        if not bool(torch.isfinite(x).all()):
            raise InputError("latents contain NaN or inf")
        return x

    # ----------------------------------------------------------------- the interface
    def update(self, latents: torch.Tensor, masks: torch.Tensor) -> "NoisePrior":
        """Accumulate the sufficient statistics of a batch of reference latents and their masks."""
        lab = self.latent_labels(masks)
        x = self._check_latents(latents, lab.shape[0]).detach().to("cpu", torch.float64)
        self._accumulate(x, lab)
        self.num_images += x.shape[0]
        self.num_tokens += x.shape[0] * self.latent_shape[1] * self.latent_shape[2]
        return self

    def merge(self, other: "NoisePrior") -> "NoisePrior":
        """Add the statistics of ``other`` (another shard of the same fit) into this prior."""
        if type(other) is not type(self):
            raise InputError(f"cannot merge a {other.name!r} prior into a {self.name!r} prior")
        for key in ("num_classes", "latent_shape", "min_count", "ignore_index", "downsample", "ignore_slot"):
            if getattr(self, key) != getattr(other, key):
                raise InputError(f"cannot merge priors with different {key}: {getattr(self, key)} vs {getattr(other, key)}")
        check_same_provenance(self.provenance, "this prior", other.provenance, "the other prior", "priors")
        for key, value in other._stats.items():
            self._stats[key] += value
        self.num_images += other.num_images
        self.num_tokens += other.num_tokens
        # merge_prior_files refuses priors of different provenance before they get here
        return self

    def sample(
        self, masks: torch.Tensor, generator: Generator = None, latents: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Draw clean latents ``x ~ N(mean, var)`` per token and channel, selected by the mask.

        Returns float32 ``[B, channels, h, w]`` on the masks' device.
        """
        device = torch.as_tensor(masks).device
        lab = self.latent_labels(masks)
        if self.needs_fit and self.num_images == 0:
            raise InputError(f"the {self.name!r} prior has not been fitted (no reference latents seen)")
        mean, var = self.token_stats(lab)
        eps = standard_normal((lab.shape[0], *self.latent_shape), generator, device)
        return (mean.to(device) + var.sqrt().to(device) * eps).float()

    def token_stats(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token mean and variance ``[B, channels, h, w]`` (float32) for latent-grid labels."""
        raise NotImplementedError

    # ----------------------------------------------------------------- statistics storage
    _stats: dict[str, torch.Tensor]

    def _accumulate(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The sufficient statistics (float64), the content of the saved file."""
        return dict(getattr(self, "_stats", {}))

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self.state_tensors().items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics and metadata as safetensors, atomically (:mod:`.file_format`)."""
        save_prior(self, path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, num_classes={self.num_classes}, "
            f"latent_shape={self.latent_shape}, min_count={self.min_count}, images={self.num_images})"
        )


