"""Sampling: start a diffusers ControlNet pipeline from a noise prior at mu*T (paper section 4, Eq. 6).

Which noise step D and which DDIM steps each mu means (the official code's ``subset_end`` rule or
the paper's "last mu*T steps"), and the normal prior as plain ControlNet inference, are the
protocol knobs ``start_rule`` and ``normal_prior_start``: the table is in :mod:`.schedule` and
docs/protocol.md.

Owns the mu -> DDIM-steps mapping (:mod:`.schedule`), per-image seeds (:mod:`scpdiff.utils.seeds`), image
generation (:mod:`.denoise`), the plan of one generation run and its shards (:mod:`.plan`,
:mod:`.shard`) and the inference speed options (:mod:`.speed`). May import :mod:`scpdiff.priors`,
:mod:`scpdiff.models`, :mod:`scpdiff.latents`, :mod:`scpdiff.datasets`, :mod:`scpdiff.config`,
:mod:`scpdiff.errors` and :mod:`scpdiff.utils`.

    pipe = scpdiff.models.load_pipeline(base, controlnet_dir)
    images = sample_images(pipe, prior, masks, palette=palette, mu=0.85, num_steps=20,
                           prompt="City road scenes", guidance_scale=4.0,
                           generators=image_generators("joint:mu=0.85", range(len(masks))))
"""

from .denoise import sample_images, start_latents
from .schedule import denoising_steps, run_timesteps
from ..utils.seeds import image_generators, image_seed

__all__ = ["denoising_steps", "image_generators", "image_seed", "run_timesteps", "sample_images", "start_latents"]
