"""Models: loading SD 2.1 / ControlNet pipelines from disk, SD 2.1 architectures as configs, the
tiny models and tokenizer built without downloads, and the mask condition ControlNet sees.

May import :mod:`scpdiff.errors` and :mod:`scpdiff.utils` only.
``load_pipeline`` (:mod:`.pipeline`), :mod:`.paths` (SD folders and the offline HF cache), :mod:`.sd_configs`,
:mod:`.tiny`, :mod:`.tokenizer`, :mod:`.controlnet` (ControlNet from a UNet), :mod:`.conditioning`, :mod:`.flops` (FLOPs of the models, counted on the meta device).

    pipe = load_pipeline("models/stable-diffusion-2-1-base", "work/cityscapes/models/controlnet", device="cuda")
"""

from .conditioning import encode_mask
from .pipeline import default_dtype, load_pipeline

__all__ = ["default_dtype", "encode_mask", "load_pipeline"]
