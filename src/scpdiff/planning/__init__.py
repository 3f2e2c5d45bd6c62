"""Planning: what a study costs before it is launched (``scpdiff plan``).

Owns the per-stage counts of a benchmark (:mod:`.stages`: jobs, images, UNet + ControlNet
evaluations, segmenter and Inception passes, disk), the FLOPs of one unit of work on the configured
models (:mod:`.model_costs`), the GPU throughput that turns FLOPs into GPU-hours
(:mod:`.throughput`) and the printed / CSV plan (:mod:`.report`). Sits above the stages whose
enumerations and defaults it reads: may import :mod:`scpdiff.sampling` (the mu -> steps rule),
:mod:`scpdiff.training` (the toy models' configs), :mod:`scpdiff.config`, :mod:`scpdiff.priors`,
:mod:`scpdiff.models`, :mod:`scpdiff.segmenters`, :mod:`scpdiff.errors` and :mod:`scpdiff.utils`.

    rows = plan_benchmark(load_benchmark("cityscapes"), paper_a100())
    text = plan_study(["cityscapes"], gpu="paper-a100", out="plan.csv")
"""

from .report import plan_study
from .stages import StageCost, plan_benchmark
from .throughput import Throughput, paper_a100

__all__ = ["StageCost", "Throughput", "paper_a100", "plan_benchmark", "plan_study"]
