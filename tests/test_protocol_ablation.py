"""The protocol ablation (issue 12): which knobs the toy flips and to what, the flipped benchmark,
the table's paired differences against hand-computed intervals, and the target's DAG."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scpdiff.cli import main
from scpdiff.config.ablation import applied_flips, flipped_benchmark, protocol_flips
from scpdiff.config.benchmark import load_benchmark
from scpdiff.config.protocol import KNOBS
from scpdiff.errors import InputError

TOY_FLIPS = {  # the toy's protocol (paper preset + its own knobs) -> the official value or the other one
    "start_rule": ("grid_tail", "official", "joint"),
    "table_mu": (0.85, 0.8, "joint"),
    "normal_prior_start": ("controlnet", "mu", "normal"),
    "guidance_scale": (1.0, 7.5, "joint"),
    "prompt_suffix": ("", ", best quality, extremely detailed", "joint"),
    "joint_fallback": ("categorical_if_rare", "spatial_if_empty", "joint"),
    "categorical_statistic": ("all_tokens", "one_token_per_image", "categorical"),
    "reference_draw": ("first_n", "with_replacement", "joint"),
    "joint_reference": ("reference_draw", "quarter_of_split", "joint"),
    "fid_masks": ("cycle", "with_replacement", "joint"),
    "ignore_labels": ("excluded", "fitted_as_class", "joint"),
}


def test_the_toy_flips_the_knobs_that_act_on_it_alone():
    flips = protocol_flips(load_benchmark("toy"))
    assert [f.knob for f in flips] == [k.name for k in KNOBS]  # every knob has a row
    assert {f.knob: (f.value, f.flipped, f.prior) for f in flips if not f.excluded} == TOY_FLIPS
    why = {f.knob: f.excluded for f in flips if f.excluded}
    for knob in ("training_mixed_precision", "training_weight_decay", "training_grad_clip", "condition_colours"):
        assert "retraining" in why[knob]
    assert "OriginalImages" in why["fid_reference"]
    assert "nothing is resized" in why["label_resize"] and "guidance_scale <= 1" in why["negative_prompt"]
    assert "no second value" in why["ddim_steps"]


def test_a_flipped_benchmark_differs_in_that_knob_alone(tmp_path):
    bench = load_benchmark("toy")
    flipped = flipped_benchmark(bench, "guidance_scale")
    assert flipped.protocol["guidance_scale"] == 7.5
    assert {k: v for k, v in flipped.protocol.values.items() if bench.protocol[k] != v} == {"guidance_scale": 7.5}
    mu = flipped_benchmark(bench, "table_mu")
    assert mu["mu"]["table"] == mu.protocol["table_mu"] == 0.8
    with pytest.raises(InputError, match="ddim_steps is not flipped in the ablation"):
        flipped_benchmark(bench, "ddim_steps")
    out = tmp_path / "flip.yaml"
    assert main(["protocol-ablation", "--benchmark", "toy", "--flip", "joint_fallback", "--out", str(out)]) == 0
    assert load_benchmark(out).protocol["joint_fallback"] == "spatial_if_empty"


def _score(path, miou, fid, kid, reps, units="maps-a"):
    rec = {"resamples": len(reps["miou"]), "seed": 0, "level": 0.95, "units_sha256": units,
           "replicates": {k: list(v) for k, v in reps.items()}}
    path.write_text(json.dumps({"miou": miou, "fid": fid, "kid": kid, "bootstrap": rec}))
    return str(path)


def test_ablation_table_paired_differences_by_hand(tmp_path):
    bench = load_benchmark("toy")
    zero = {"miou": [0.5] * 5, "fid": [100.0] * 5, "kid": [0.1] * 5}
    defaults = {p: _score(tmp_path / f"{p}.json", 0.5, 100.0, 0.1, zero) for p in ("joint", "normal", "categorical")}
    # the flip's replicates minus the default's: 0, 1, 2, 3, 4 (FID); its estimate is 3 above
    flip = {"miou": [0.5, 0.51, 0.52, 0.53, 0.54], "fid": [100.0, 101, 102, 103, 104], "kid": [0.1] * 5}
    flips = {f.knob: _score(tmp_path / f"{f.knob}.json", 0.52, 103.0, 0.1, flip) for f in applied_flips(bench)}
    flips["fid_masks"] = _score(tmp_path / "masks.json", 0.52, 103.0, 0.1, flip, units="maps-b")
    out = tmp_path / "ablation.csv"
    args = ["protocol-ablation", "--benchmark", "toy", "--out", str(out)]
    args += [x for p, f in defaults.items() for x in ("--default-score", p, f)]
    args += [x for k, f in flips.items() for x in ("--flip-score", k, f)]
    assert main(args) == 0
    frame = pd.read_csv(out)
    assert list(frame["knob"][:3]) == ["(default)"] * 3 and len(frame) == 3 + len(KNOBS)
    row = frame[frame["knob"] == "guidance_scale"].iloc[0]
    # numpy's linear quantiles of 0..4 at 2.5 % / 97.5 %: 0.1 and 3.9, moved by estimate - median = 3 - 2
    assert row["fid_diff"] == pytest.approx(3.0) and bool(row["paired"])
    assert (row["fid_diff_lo"], row["fid_diff_hi"]) == pytest.approx((1.1, 4.9))
    # mIoU in percent: differences 0, 1, 2, 3, 4 points, estimate 2 -> moved by 0
    assert (row["miou_diff"], row["miou_diff_lo"], row["miou_diff_hi"]) == pytest.approx((2.0, 0.1, 3.9))
    assert row["fid_lo"] == pytest.approx(100.1 + 1.0)  # the flip's own interval, around its estimate
    masks = frame[frame["knob"] == "fid_masks"].iloc[0]  # other label maps: no paired interval
    assert not bool(masks["paired"]) and np.isnan(masks["fid_diff_lo"]) and masks["fid_diff"] == pytest.approx(3.0)
    left_out = frame[frame["knob"] == "training_weight_decay"].iloc[0]
    assert "retraining" in left_out["excluded"] and np.isnan(left_out["fid"])
    # a knob the ablation flips without its score file is an error naming it
    del flips["ignore_labels"]
    with pytest.raises(InputError, match=r"missing score files for \['ignore_labels'\]"):
        from scpdiff.reporting.protocol_ablation import protocol_ablation_table

        protocol_ablation_table(bench, defaults, flips)
