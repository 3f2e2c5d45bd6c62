"""The protocol ablation table: each flipped knob's mIoU / FID / KID against the default run.

One row per knob of the protocol (:func:`scpdiff.config.ablation.protocol_flips`): the knob, its
value in the benchmark and the flipped one, the prior whose run measures it, the flip's metrics with
their bootstrap intervals, and the difference to the default run of the same prior with its paired
interval (:func:`scpdiff.utils.intervals.paired_interval`: both runs scored with the same resamples
of the same label maps). A flip that scores other label maps (``fid_masks``) has no paired
interval (``paired`` false); a knob left out has its reason and no numbers. The default runs come
first, as rows named ``(default)``.

    frame = protocol_ablation_table(bench, {"joint": "scores/joint/mu0.85.json"}, {"guidance_scale": "score.json"})
"""

from __future__ import annotations

import math
import os
from typing import Mapping

import pandas as pd

from ..config.ablation import protocol_flips
from ..errors import InputError
from ..utils.intervals import paired_interval, percentile_interval
from .tables import read_replicates, read_score, write_metrics

ABLATION_METRICS = ("miou", "fid", "kid")
COLUMNS = ("knob", "value", "flipped", "prior", "mu", "paired", "excluded",
           *(f"{m}{s}" for m in ABLATION_METRICS for s in ("", "_lo", "_hi")),
           *(f"{m}_diff{s}" for m in ABLATION_METRICS for s in ("", "_lo", "_hi")))
DEFAULT_ROW = "(default)"


def _metrics(path) -> tuple[dict, list]:
    score, reps = read_score(path), read_replicates(path)
    out = {}
    for m in ABLATION_METRICS:
        out[m], out[f"{m}_lo"], out[f"{m}_hi"] = score[m], math.nan, math.nan
        for rec in reps:
            if m in rec.values:
                out[f"{m}_lo"], out[f"{m}_hi"] = percentile_interval(rec.values[m], rec.level, score[m])
    return out, reps


def protocol_ablation_table(bench, default_scores: Mapping[str, str | os.PathLike],
                            flip_scores: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """The ablation frame of ``bench`` (module doc) from the default runs' score files (prior ->
    file) and the flips' (knob -> file); every knob the ablation keeps must have its file."""
    flips = protocol_flips(bench)
    missing = [f.knob for f in flips if not f.excluded and f.knob not in flip_scores]
    unknown = sorted(set(flip_scores) - {f.knob for f in flips if not f.excluded})
    if missing or unknown:
        raise InputError(f"{bench.name}: the ablation flips {[f.knob for f in flips if not f.excluded]}; "
                         f"missing score files for {missing}, unexpected for {unknown}")
    mu = float(bench["mu"]["table"])
    rows, defaults = [], {}
    for prior, path in default_scores.items():
        values, reps = _metrics(path)
        defaults[prior] = (values, reps)
        rows.append({"knob": DEFAULT_ROW, "prior": prior, "mu": mu, "excluded": "", **values})
    for flip in flips:
        row = {"knob": flip.knob, "value": flip.value, "flipped": flip.flipped, "prior": flip.prior,
               "excluded": flip.excluded}
        if not flip.excluded:
            if flip.prior not in defaults:
                raise InputError(f"{flip_scores[flip.knob]}: no default run of the {flip.prior} prior given")
            values, reps = _metrics(flip_scores[flip.knob])
            base, base_reps = defaults[flip.prior]
            row.update(values, mu=float(bench["protocol"]["table_mu"]) if flip.knob != "table_mu" else flip.flipped,
                       paired=False)
            for m in ABLATION_METRICS:
                row[f"{m}_diff"] = values[m] - base[m]
                row[f"{m}_diff_lo"] = row[f"{m}_diff_hi"] = math.nan
                for a in reps:
                    for b in base_reps:
                        if a.key == b.key and m in a.values and m in b.values:
                            row["paired"] = True
                            row[f"{m}_diff_lo"], row[f"{m}_diff_hi"] = paired_interval(
                                a.values[m], b.values[m], a.level, row[f"{m}_diff"])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_protocol_ablation(bench, default_scores, flip_scores, out: str | os.PathLike) -> pd.DataFrame:
    """:func:`protocol_ablation_table` written to ``out`` (CSV, atomically)."""
    frame = protocol_ablation_table(bench, default_scores, flip_scores)
    write_metrics(frame, out)
    return frame
