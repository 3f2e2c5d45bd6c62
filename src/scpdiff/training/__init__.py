"""One training code path for the toy and the real runs (accelerate, resumable, CSV loss logs).

- :mod:`.loop` -- the resumable loop (:func:`run_training`) and :class:`LoopConfig`
- :mod:`.data` -- batches in an order that depends only on the step (exact resumes)
- :mod:`.diffusion` -- the epsilon / v denoising objective on VAE latents
- :mod:`.vae`, :mod:`.base`, :mod:`.segmenter` -- the toy's VAE, base UNet and segmenter
- :mod:`.controlnet` -- ControlNet fine-tuning from a base UNet (toy and SD 2.1)
- :mod:`.stages` -- what each ``scpdiff train-*`` command runs
- :mod:`.launcher` -- one process per GPU of a job (``python -m scpdiff.training.launcher``, accelerate)

May import :mod:`scpdiff.config`, :mod:`scpdiff.latents`, :mod:`scpdiff.models`, :mod:`scpdiff.datasets`,
:mod:`scpdiff.segmenters` (the toy segmenter's network), :mod:`scpdiff.utils` and :mod:`scpdiff.errors`.
"""

from .loop import LoopConfig, LoopResult, checkpoints, run_training

__all__ = ["LoopConfig", "LoopResult", "checkpoints", "run_training"]
