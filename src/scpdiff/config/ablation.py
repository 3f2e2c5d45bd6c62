"""The protocol ablation: each knob flipped alone from a benchmark's resolved protocol.

``snakemake results/toy/protocol_ablation.csv`` (not part of the default target) runs, for every
knob that :func:`protocol_flips` keeps, one setting under the benchmark's protocol with that knob
alone set to its flipped value, and reports its mIoU / FID / KID with bootstrap intervals and the
paired difference to the same setting under the unchanged protocol (the default run, which the
study itself generates: Table 1's setting of the prior at ``table_mu``).

Which knobs a benchmark flips, and to what:

- the flipped value is the ``official`` preset's value where it differs from the benchmark's, else
  the other value of a two-valued knob; a number both presets agree on has nothing to flip to;
- the run is the joint prior at ``table_mu`` (the paper's method), except for the knobs that act on
  one other prior alone: ``normal_prior_start`` (the normal prior), ``categorical_statistic``
  (the categorical prior);
- left out, with the reason in the CSV: knobs that change the fine-tuned ControlNet (prompts and
  colours it was trained on, the optimizer settings: a retraining per flip), knobs that cannot act
  on this benchmark (resizing at the native size, the Cityscapes split walk elsewhere), and
  knobs that act only under another knob's value (a seed of a draw that is not made, the negative
  prompt without an unconditional branch).

    flips = protocol_flips(load_benchmark("toy"))
    write_flipped_benchmark(bench, "guidance_scale", "work/toy/ablation/guidance_scale/benchmark.yaml")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import InputError
from ..utils.files import write_text_atomic
from .benchmark import Benchmark, validate_benchmark
from .protocol import KNOB_BY_NAME, KNOBS

# knobs whose flip needs the ControlNet fine-tuned again (training prompt, condition colours, optimizer)
RETRAINING = ("training_prompt", "condition_colours", "training_mixed_precision", "training_weight_decay",
              "training_grad_clip")
# knobs measured on another prior than the joint one (they act on that prior alone)
FLIP_PRIOR = {"normal_prior_start": "normal", "categorical_statistic": "categorical"}
DEFAULT_PRIOR = "joint"


@dataclass(frozen=True)
class Flip:
    """One knob of the ablation: its value in the benchmark, the flipped value, the prior whose run
    measures it, and (``excluded``) why it is left out of this benchmark's ablation."""

    knob: str
    value: Any
    flipped: Any = None
    prior: str = DEFAULT_PRIOR
    excluded: str = ""


def _flipped_value(knob, current, kind: str):
    official = knob.preset_value("official", kind)
    if official != current:
        return official
    enum = knob.schema.get("enum")
    if enum and len(enum) == 2:
        return enum[1] if current == enum[0] else enum[0]
    if knob.schema.get("type") == "boolean":
        return not current
    return None


def _not_applicable(bench: Benchmark, name: str) -> str:
    """Why knob ``name`` cannot act on this benchmark ('' when it can)."""
    proto, kind = bench.protocol, bench["dataset"]["kind"]
    if name in RETRAINING:
        return "changes the fine-tuned ControlNet: a retraining per flip, not part of this ablation"
    if name == "cityscapes_split_walk" and kind != "cityscapes":
        return "a Cityscapes loader defect"
    if name in ("label_resize", "condition_resize") and bench.is_toy:
        return "the toy's images are made at the benchmark resolution: nothing is resized"
    if name == "fid_reference" and bench.is_toy:
        return ("original_images reads the val images' own files, which the toy reader does not give "
                "(scpdiff.metrics.scoring.OriginalImages refuses it)")
    if name == "reference_seed" and proto["reference_draw"] != "with_replacement":
        return "seeds a draw with replacement, which reference_draw first_n does not make"
    if name in ("fid_mask_seed", "fid_samples_per_mask") and proto["fid_masks"] != "with_replacement":
        return "acts only under fid_masks with_replacement"
    if name == "negative_prompt" and float(proto["guidance_scale"]) <= 1.0:
        return "no unconditional branch at guidance_scale <= 1"
    prior = FLIP_PRIOR.get(name, DEFAULT_PRIOR)
    if prior not in bench["priors"]:
        return f"acts on the {prior} prior, which the benchmark does not compare"
    return ""


def protocol_flips(bench: Benchmark) -> list[Flip]:
    """Every knob of the protocol, in :data:`KNOBS` order, as flipped (or left out) on ``bench``."""
    out = []
    for knob in KNOBS:
        current = bench.protocol[knob.name]
        reason = _not_applicable(bench, knob.name)
        flipped = _flipped_value(knob, current, bench["dataset"]["kind"])
        if not reason and flipped is None:
            reason = "both presets agree and the knob has no second value to flip to"
        out.append(Flip(knob.name, current, None if reason else flipped,
                        FLIP_PRIOR.get(knob.name, DEFAULT_PRIOR), reason))
    return out


def applied_flips(bench: Benchmark) -> list[Flip]:
    return [f for f in protocol_flips(bench) if not f.excluded]


def flipped_benchmark(bench: Benchmark, knob: str) -> Benchmark:
    """``bench`` with knob ``knob`` alone set to its flipped value (validated like any benchmark)."""
    flips = {f.knob: f for f in protocol_flips(bench)}
    if knob not in KNOB_BY_NAME:
        raise InputError(f"unknown protocol knob {knob!r}; known: {sorted(KNOB_BY_NAME)}")
    if flips[knob].excluded:
        raise InputError(f"{bench.name}: knob {knob} is not flipped in the ablation: {flips[knob].excluded}")
    data = {k: v for k, v in dict(bench).items()}
    data["protocol"] = {**dict(bench["protocol"]), knob: flips[knob].flipped}
    if knob == "table_mu":  # the resolved file carries mu.table too; both must say the same
        data["mu"] = {**data["mu"], "table": flips[knob].flipped}
    return validate_benchmark(data, source=f"{bench.name} with {knob} flipped")


def write_flipped_benchmark(benchmark: Benchmark, knob: str, out: str | os.PathLike) -> Benchmark:
    """Write :func:`flipped_benchmark` to ``out`` (the file the flip's jobs read)."""
    flipped = flipped_benchmark(benchmark, knob)
    write_text_atomic(out, yaml.safe_dump(dict(flipped), sort_keys=False))
    return flipped
