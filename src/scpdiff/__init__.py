"""scpdiff: semantic image synthesis with diffusion noise priors (SCP-Diff), as a library and harness.

One sub-package per pipeline stage (docs/architecture.md: which rule calls which command, and the
allowed import direction that tests/test_import_graph.py checks):

- :mod:`scpdiff.config` -- benchmark files (benchmarks/*.yaml) and the workflow config, validated.
- :mod:`scpdiff.datasets` -- the toy dataset and readers for Cityscapes, ADE20K and COCO-Stuff.
- :mod:`scpdiff.models` -- SD 2.1 / ControlNet loading and configs, tiny models, the mask condition.
- :mod:`scpdiff.latents` -- VAE encoding of images into latents and the latent shard files.
- :mod:`scpdiff.priors` -- the noise priors of the paper (Eqs. 4, 5, 7, 8), by name.
- :mod:`scpdiff.sampling` -- a ControlNet pipeline started from a prior at mu*T (Eq. 6), in shards.
- :mod:`scpdiff.segmenters` -- the evaluation segmenters of the protocol, by name.
- :mod:`scpdiff.metrics` -- FID/KID, mIoU/accuracy, LPIPS and MS-SSIM diversity, offline weights.
- :mod:`scpdiff.training` -- VAE / base UNet / ControlNet / segmenter training (accelerate).
- :mod:`scpdiff.reporting` -- the paper's Tables 1-3 and Figures 3, 7, 8.
- :mod:`scpdiff.commands` -- one module per ``scpdiff`` command: arguments in, one library call.
- :mod:`scpdiff.utils` -- atomic files, sharding, hashing, seeds, PyTorch global state.
- top: :mod:`scpdiff.cli` (the command), :mod:`scpdiff.errors`, :mod:`scpdiff.registry` (one Registry).
"""

__version__ = "0.1.0"
