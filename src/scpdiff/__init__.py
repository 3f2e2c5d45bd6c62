"""scpdiff: semantic image synthesis with diffusion noise priors (SCP-Diff), as a library and harness.

The library's parts, one concept per module:

- :mod:`scpdiff.priors` -- the noise priors of the paper (Eqs. 4, 5, 7, 8), a registry by name.
- :mod:`scpdiff.sampling.denoise` -- start a diffusers ControlNet pipeline from a prior at mu*T (Eq. 6).
- :mod:`scpdiff.models.conditioning` -- the colour-coded mask given to ControlNet (one place).
- :mod:`scpdiff.datasets` -- the toy dataset and readers for Cityscapes, ADE20K and COCO-Stuff.
- :mod:`scpdiff.training` -- VAE / base UNet / ControlNet / segmenter training (accelerate).
- :mod:`scpdiff.metrics` -- FID/KID, mIoU/accuracy, LPIPS and MS-SSIM diversity.
- :mod:`scpdiff.config.benchmark` -- benchmark configuration files (benchmarks/*.yaml).
- :mod:`scpdiff.cli` -- the ``scpdiff`` command the workflow rules call.
"""

__version__ = "0.1.0"
