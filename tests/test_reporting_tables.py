"""Tables 1-3 from hand-built score files: values, deltas to the normal prior, bold best, LaTeX."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scpdiff.cli import main
from scpdiff.errors import InputError
from scpdiff.reporting import tables as T

# the paper's Table 1 (Cityscapes, ADE20K): mIoU, Acc, FID
PAPER_TABLE1 = {
    "cityscapes": {
        "normal": (65.14, 94.14, 23.35),
        "spatial": (66.77, 94.29, 12.83),
        "categorical": (66.86, 94.54, 11.63),
        "joint": (67.92, 94.65, 10.53),
    },
    "ade20k": {
        "normal": (20.73, 61.14, 20.58),
        "spatial": (20.86, 64.46, 16.03),
        "categorical": (21.86, 66.63, 16.56),
        "joint": (25.61, 71.79, 12.66),
    },
}
PAPER_DELTAS = {  # the parenthesised values of the paper's Table 1
    ("cityscapes", "joint"): (2.78, 0.51, -12.82),
    ("cityscapes", "spatial"): (1.63, 0.15, -10.52),
    ("ade20k", "joint"): (4.88, 10.65, -7.92),
    ("ade20k", "categorical"): (1.13, 5.49, -4.02),
}


def _write_score(path, fid=None, miou=None, acc=None, lpips=None, ms_ssim=None):
    row = {"num_images": 10}
    if fid is not None:
        row.update(fid=fid, kid=0.01, kid_std=0.001)
    if miou is not None:
        row.update(miou=miou / 100.0, pixel_accuracy=acc / 100.0)  # scpdiff score writes fractions
    if lpips is not None:
        row.update(lpips=lpips, ms_ssim=ms_ssim)
    path.write_text(json.dumps({**row, "provenance": {"benchmark": "x"}}))
    return path


def _paper_metrics(tmp_path) -> pd.DataFrame:
    frames = []
    for bench, rows in PAPER_TABLE1.items():
        fid_scores, div_scores = [], []
        for prior, (miou, acc, fid) in rows.items():
            fid_scores.append((prior, 0.85, _write_score(tmp_path / f"{bench}_{prior}.json", fid, miou, acc)))
            # a second mu that must not enter the tables
            fid_scores.append((prior, 1.0, _write_score(tmp_path / f"{bench}_{prior}_1.json", fid + 5, miou - 1, acc - 1)))
            lp = {"normal": 0.59, "spatial": 0.57, "categorical": 0.58, "joint": 0.56}[prior]
            ms = {"normal": 0.17, "spatial": 0.19, "categorical": 0.18, "joint": 0.21}[prior]
            div_scores.append((prior, 0.85, _write_score(tmp_path / f"{bench}_{prior}_div.json", lpips=lp, ms_ssim=ms)))
        fid_scores.append(("oracle", 0.5, _write_score(tmp_path / f"{bench}_oracle.json", 3.0, 90.0, 99.0)))
        frames.append(T.collect_metrics(bench, bench, 0.85, fid_scores, div_scores))
    return pd.concat(frames, ignore_index=True)


def test_read_score_converts_fractions_to_percent(tmp_path):
    p = _write_score(tmp_path / "s.json", fid=12.5, miou=65.14, acc=94.14)
    got = T.read_score(p)
    assert got["fid"] == 12.5
    assert got["miou"] == pytest.approx(65.14)
    assert got["acc"] == pytest.approx(94.14)
    assert math.isnan(got["lpips"]) and math.isnan(got["ms_ssim"])


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"fid": "low"}'])
def test_read_score_rejects_bad_files(tmp_path, text):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(InputError, match="bad.json"):
        T.read_score(p)


def test_table1_values_and_deltas_match_the_paper(tmp_path):
    metrics = _paper_metrics(tmp_path)
    table, deltas = T.table1(metrics)
    assert list(table.index) == ["normal", "spatial", "categorical", "joint"]  # oracle excluded
    assert list(table.columns.get_level_values(0).unique()) == ["cityscapes", "ade20k"]
    for bench, rows in PAPER_TABLE1.items():
        for prior, values in rows.items():
            got = [table.loc[prior, (bench, m)] for m in ("mIoU", "Acc", "FID")]
            np.testing.assert_allclose(got, values, atol=1e-9)
    for (bench, prior), expected in PAPER_DELTAS.items():
        got = [deltas.loc[prior, (bench, m)] for m in ("mIoU", "Acc", "FID")]
        np.testing.assert_allclose(got, expected, atol=1e-9)
    assert (deltas.loc["normal"] == 0).all()


def test_best_mask_picks_max_for_miou_and_min_for_fid_with_ties():
    cols = pd.MultiIndex.from_tuples([("b", "mIoU"), ("b", "FID")])
    table = pd.DataFrame([[50.0, 20.0], [52.004, 10.0], [52.001, np.nan]], index=["normal", "a", "c"], columns=cols)
    mask = T.best_mask(table, (T.MIOU, T.FID))
    # 52.004 and 52.001 both print as 52.00: a tie, both bold; NaN never best
    assert mask[("b", "mIoU")].tolist() == [False, True, True]
    assert mask[("b", "FID")].tolist() == [False, True, False]


def test_table1_latex_is_booktabs_with_bold_best_and_signed_deltas(tmp_path):
    metrics = _paper_metrics(tmp_path)
    table, deltas = T.table1(metrics)
    tex = T.to_latex(table, T.TABLE1_METRICS, deltas, caption="c", label="tab:x")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert r"\multicolumn{3}{c}{cityscapes}" in tex and r"\multicolumn{3}{c}{ade20k}" in tex
    joint = next(line for line in tex.splitlines() if line.startswith("Joint Prior"))
    # the joint prior is best in every column of the paper's Table 1
    assert joint.count(r"\textbf{") == 6
    assert r"\textbf{10.53} ($-$12.82)" in joint and r"\textbf{67.92} (+2.78)" in joint
    normal = next(line for line in tex.splitlines() if line.startswith("Normal Prior"))
    assert r"\textbf" not in normal and "65.14 (+0.00)" in normal
    spatial = next(line for line in tex.splitlines() if line.startswith("Spatial Prior"))
    # ADE20K: spatial has the second-best FID but not the best; no bold anywhere in its row
    assert r"\textbf" not in spatial and "16.03 ($-$4.55)" in spatial


def test_table3_bold_direction_lpips_up_msssim_down(tmp_path):
    table, deltas = T.table3(_paper_metrics(tmp_path))
    tex = T.to_latex(table, T.TABLE3_METRICS, deltas)
    normal = next(line for line in tex.splitlines() if line.startswith("Normal Prior"))
    joint = next(line for line in tex.splitlines() if line.startswith("Joint Prior"))
    # normal has the highest LPIPS and lowest MS-SSIM (most diverse): bold in all four columns
    assert normal.count(r"\textbf{") == 4
    assert r"\textbf" not in joint and r"0.560 ($-$0.030)" in joint


def test_table2_puts_our_fid_in_the_dataset_column_beside_the_literature(tmp_path):
    metrics = _paper_metrics(tmp_path)
    t2 = T.table2(metrics)
    lit = T.load_literature()
    assert t2.loc["OASIS", "Cityscapes"] == 47.7 and t2.loc["OASIS", "ADE20K"] == 28.3
    assert t2.loc["SCP-Diff Joint Prior (ours)", "Cityscapes"] == pytest.approx(10.53)
    assert t2.loc["ControlNet / Normal Prior (ours)", "ADE20K"] == pytest.approx(20.58)
    assert np.isnan(t2.loc["SCP-Diff Joint Prior (ours)", "COCO-Stuff"])
    assert len(t2) == len(lit) + 4
    assert t2.loc["SCP-Diff Joint Prior (ours)", "source"] == "this run"


def test_table2_gives_a_toy_benchmark_its_own_column(tmp_path):
    p = _write_score(tmp_path / "n.json", 40.0, 30.0, 70.0)
    metrics = T.collect_metrics("smoke", "toy", 0.85, [("normal", 0.85, p)])
    t2 = T.table2(metrics)
    assert "smoke" in t2.columns
    assert t2.loc["ControlNet / Normal Prior (ours)", "smoke"] == 40.0
    assert t2["smoke"].notna().sum() == 1


def test_literature_file_holds_the_papers_table2():
    lit = T.load_literature().set_index("method")
    assert lit.loc["ECGAN", "Cityscapes"] == 44.5 and lit.loc["ECGAN", "COCO-Stuff"] == 15.7
    assert lit.loc["SCP-Diff Joint Prior (paper)", "ADE20K"] == 13.0
    assert np.isnan(lit.loc["SIMS", "ADE20K"])
    assert lit["source"].str.contains("SCP-Diff Table 2").all()


def test_collect_metrics_rejects_a_setting_scored_twice(tmp_path):
    p = _write_score(tmp_path / "a.json", 1.0, 2.0, 3.0)
    with pytest.raises(InputError, match="already scored"):
        T.collect_metrics("b", "toy", 0.5, [("joint", 0.5, p), ("joint", 0.5, p)])


def test_latex_escapes_registered_variant_names():
    table = pd.DataFrame([[1.0]], index=["my_variant"], columns=pd.MultiIndex.from_tuples([("a_b", "FID")]))
    tex = T.to_latex(table, (T.FID,))
    assert r"My Variant Prior" in tex and r"a\_b" in tex


def test_tables_command_writes_metrics_and_tables_and_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["tables", "--benchmark", "smoke"]
    for prior, fid in (("normal", 30.0), ("joint", 20.0)):
        for mu in ("0.85", "1"):
            f = _write_score(tmp_path / f"{prior}{mu}.json", fid + float(mu), 50.0, 80.0)
            args += ["--score", prior, mu, str(f)]
        d = _write_score(tmp_path / f"{prior}_div.json", lpips=0.3, ms_ssim=0.4)
        args += ["--diversity-score", prior, "0.85", str(d)]
    assert main(args + ["--out-dir", "out"]) == 0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(metrics) == 4 and metrics["table_mu"].sum() == 2
    t1 = pd.read_csv(tmp_path / "out" / "table1.csv", index_col=0)
    assert t1.loc["joint", "smoke/FID"] == pytest.approx(20.85)
    assert t1.loc["joint", "smoke/FID delta"] == pytest.approx(-10.0)
    for i in (1, 2, 3):
        assert (tmp_path / "out" / f"table{i}.tex").read_text().startswith(r"\begin{table}")
    # one metrics CSV alone: the same tables again
    assert main(["tables", "--metrics", "out/metrics.csv", "--out-dir", "again"]) == 0
    for i in (1, 2, 3):
        for ext in ("csv", "tex"):
            assert (tmp_path / "again" / f"table{i}.{ext}").read_text() == (tmp_path / "out" / f"table{i}.{ext}").read_text()


def test_tables_command_without_inputs_fails_clearly(tmp_path, capsys):
    assert main(["tables", "--out-dir", str(tmp_path)]) == 1
    assert "nothing to tabulate" in capsys.readouterr().err


def _bench_metrics_csv(tmp_path, bench, scale, extra=None):
    """results/{bench}/metrics.csv as `scpdiff collect-metrics` writes it (the workflow's path)."""
    args = ["collect-metrics", "--benchmark", "smoke"]
    for prior, fid, miou in (("normal", 30.0, 40.0), ("joint", 20.0, 50.0)):
        f = _write_score(tmp_path / f"{bench}_{prior}.json", fid * scale, miou * scale, 80.0)
        d = _write_score(tmp_path / f"{bench}_{prior}_div.json", lpips=0.3 * scale, ms_ssim=0.4)
        args += ["--score", prior, "0.85", str(f), "--diversity-score", prior, "0.85", str(d)]
    out = tmp_path / bench / "metrics.csv"
    assert main(args + ["--out", str(out)]) == 0
    frame = pd.read_csv(out)
    frame["benchmark"] = bench  # two benchmarks from one benchmark file: rename the second
    for column, value in (extra or {}).items():
        frame[column] = value
    frame.to_csv(out, index=False)
    return out


def test_study_tables_put_every_benchmark_in_a_column_group_of_one_table(tmp_path):
    a = _bench_metrics_csv(tmp_path, "smoke", 1.0)
    b = _bench_metrics_csv(tmp_path, "smoke_b", 2.0, extra={"fid_ci_low": 1.5})
    assert main(["tables", "--metrics", str(a), str(b), "--table", "1", "3", "--out-dir", str(tmp_path / "study")]) == 0
    assert not (tmp_path / "study" / "table2.csv").exists()  # only the tables asked for
    t1 = pd.read_csv(tmp_path / "study" / "table1.csv", index_col=0)
    assert list(t1.index) == ["normal", "joint"]
    assert t1.loc["joint", "smoke/FID"] == 20.0 and t1.loc["joint", "smoke_b/FID"] == 40.0
    assert t1.loc["joint", "smoke_b/mIoU delta"] == pytest.approx(20.0)
    tex = (tmp_path / "study" / "table1.tex").read_text()
    assert r"\multicolumn{3}{c}{smoke}" in tex and r"\multicolumn{3}{c}{smoke\_b}" in tex
    t3 = pd.read_csv(tmp_path / "study" / "table3.csv", index_col=0)
    assert t3.loc["normal", "smoke_b/LPIPS"] == pytest.approx(0.6)
    # a column one benchmark's CSV adds (e.g. an interval) reaches the combined metrics frame
    frame = T.read_metrics([a, b])
    assert frame["fid_ci_low"].isna().tolist() == [True, True, False, False]
    # one benchmark: the study table is that benchmark's table
    assert main(["tables", "--metrics", str(a), "--table", "1", "--out-dir", str(tmp_path / "one")]) == 0
    assert main(["tables", "--metrics", str(a), "--out-dir", str(tmp_path / "smoke")]) == 0
    assert (tmp_path / "one" / "table1.tex").read_text() == (tmp_path / "smoke" / "table1.tex").read_text()


def test_tables_command_rejects_an_unknown_table(tmp_path, capsys):
    a = _bench_metrics_csv(tmp_path, "smoke", 1.0)
    assert main(["tables", "--metrics", str(a), "--table", "5", "--out-dir", str(tmp_path)]) == 1
    assert "no table [5]" in capsys.readouterr().err


# --------------------------------------------------------------------------- uncertainty


def _write_boot_score(path, miou_reps, fid_reps, seed=0, units="u1", level=0.95, fid=None, miou=None):
    """A score file as `scpdiff score` writes it with bootstrap replicates (mIoU as a fraction)."""
    miou_reps, fid_reps = np.asarray(miou_reps, float), np.asarray(fid_reps, float)
    row = {"fid": float(np.mean(fid_reps)) if fid is None else fid, "kid": 0.01, "kid_std": 0.001,
           "miou": float(np.mean(miou_reps)) if miou is None else miou, "pixel_accuracy": 0.9,
           "bootstrap": {"resamples": len(fid_reps), "seed": seed, "level": level, "units_sha256": units,
                         "num_units": 5, "unit": "label map",
                         "replicates": {"fid": fid_reps.tolist(), "miou": miou_reps.tolist()}}}
    path.write_text(json.dumps(row))
    return path


def test_paired_difference_intervals_and_the_latex_mark(tmp_path):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=200) * 5  # what the resampled label maps add, shared by both settings
    normal = _write_boot_score(tmp_path / "n.json", 0.40 + maps / 100, 30 + maps)
    # joint: FID 2 lower on every resample (paired interval excludes 0); mIoU no different
    joint = _write_boot_score(tmp_path / "j.json", 0.40 + maps / 100 + 0.001 * rng.normal(size=200), 28 + maps)
    frame = T.collect_metrics("b", "toy", 0.85, [("normal", 0.85, normal), ("joint", 0.85, joint)])
    j = frame.set_index("prior").loc["joint"]
    assert (j["fid_delta_lo"], j["fid_delta_hi"]) == (pytest.approx(-2.0), pytest.approx(-2.0))
    assert j["miou_delta_lo"] < 0 < j["miou_delta_hi"] and j["miou_delta_hi"] - j["miou_delta_lo"] < 1.0
    # the interval of each value, in percent for mIoU, by numpy's quantiles
    shift = np.mean(28 + maps) - np.median(28 + maps)  # the interval sits on the estimate (the mean here)
    assert (j["fid_lo"], j["fid_hi"]) == (pytest.approx(np.quantile(28 + maps, 0.025) + shift),
                                          pytest.approx(np.quantile(28 + maps, 0.975) + shift))
    assert j["miou_hi"] > 40 > j["miou_lo"] and j["bootstrap_resamples"] == 200
    T.write_tables(frame, tmp_path / "out")
    t1 = pd.read_csv(tmp_path / "out" / "table1.csv", index_col=0)
    assert t1.loc["joint", "b/FID delta hi"] == pytest.approx(-2.0) and "b/FID lo" in t1.columns
    tex = (tmp_path / "out" / "table1.tex").read_text()
    fid_cell = next(line for line in tex.splitlines() if line.startswith("Joint Prior"))
    assert r"($-$2.00)$^{\ast}$" in fid_cell  # the FID difference is marked ...
    assert fid_cell.count(r"$^{\ast}$") == 1  # ... the mIoU one (interval across 0) is not


def test_no_pairing_across_different_resamples_or_label_maps(tmp_path):
    reps = np.linspace(0, 1, 50)
    normal = _write_boot_score(tmp_path / "n.json", reps, 30 + reps)
    other_seed = _write_boot_score(tmp_path / "a.json", reps, 20 + reps, seed=1)
    other_maps = _write_boot_score(tmp_path / "b.json", reps, 20 + reps, units="u2")
    frame = T.collect_metrics("b", "toy", 0.85, [("normal", 0.85, normal), ("joint", 0.85, other_seed),
                                                 ("spatial", 0.85, other_maps)]).set_index("prior")
    assert frame[["fid_delta_lo", "fid_delta_hi"]].isna().all().all()
    assert frame.loc["joint", "fid_lo"] == pytest.approx(20 + np.quantile(reps, 0.025))


def test_seed_spread_and_reference_rows(tmp_path):
    s = lambda name, fid, miou=50.0: _write_score(tmp_path / name, fid, miou, 90.0)  # noqa: E731
    frame = T.collect_metrics(
        "b", "toy", 0.85, [("normal", 0.85, s("n.json", 30.0)), ("joint", 0.85, s("j.json", 20.0))],
        seed_scores=[("joint", 0.85, 1, s("j1.json", 22.0)), ("joint", 0.85, 2, s("j2.json", 24.0))],
        reference_scores=[("real_images", _write_score(tmp_path / "rv.json", miou=70.0, acc=95.0)),
                          ("real_images", _write_score(tmp_path / "rt.json", fid=5.0)),
                          ("vae_reconstruction", s("v.json", 9.0, 65.0))])
    by = frame.set_index("prior")
    assert by.loc["joint", "fid_seed_sd"] == pytest.approx(np.std([20.0, 22.0, 24.0], ddof=1))
    assert by.loc["joint", "seeds"] == 3 and by.loc["normal", "seeds"] == 1
    assert (by.loc["real_images", "fid"], by.loc["real_images", "miou"]) == (5.0, pytest.approx(70.0))
    t1, d1 = T.table1(frame)
    assert list(t1.index) == ["normal", "joint", "real_images", "vae_reconstruction"]
    assert d1.loc["real_images"].isna().all() and d1.loc["joint", ("b", "FID")] == -10.0
    # the real images are no method: never bold, and Table 2 leaves them out
    best = T.best_mask(t1, T.TABLE1_METRICS)
    assert best.loc["joint", ("b", "FID")] and not best.loc["real_images"].any()
    assert "Real images (reference)" not in T.table2(frame).index.str.cat()
    # a reference row with no diversity scores is not in Table 3
    assert "real_images" not in T.table3(frame)[0].index
    with pytest.raises(InputError, match="unknown reference row"):
        T.collect_metrics("b", "toy", 0.85, reference_scores=[("real", s("x.json", 1.0))])
    with pytest.raises(InputError, match="no primary score"):
        T.collect_metrics("b", "toy", 0.85, seed_scores=[("joint", 0.85, 1, s("y.json", 1.0))])


def test_the_papers_table1_values_stand_beside_ours_with_their_source(tmp_path):
    """A benchmark's `table1: {source, values}` (the released-model benchmarks) reaches Table 1 as
    'paper' columns: the values as data, their deltas to the paper's normal prior, the source named."""
    args = ["collect-metrics", "--benchmark", "cityscapes-released"]
    ours = {"normal": (30.0, 60.0, 90.0), "official_joint": (20.0, 66.0, 93.0)}
    for prior, (fid, miou, acc) in ours.items():
        f = _write_score(tmp_path / f"{prior}.json", fid, miou, acc)
        args += ["--score", prior, "0.85", str(f)]
    metrics_csv = tmp_path / "metrics" / "table1.csv"
    assert main(args + ["--out", str(metrics_csv)]) == 0
    assert main(["tables", "--metrics", str(metrics_csv), "--table", "1", "--out-dir", str(tmp_path / "t")]) == 0
    t1 = pd.read_csv(tmp_path / "t" / "table1.csv", index_col=0)
    b = "cityscapes_released"
    # the paper's Table 1, Cityscapes columns (benchmarks/cityscapes-released.yaml)
    assert t1.loc["normal", f"{b}/paper FID"] == 23.35 and t1.loc["official_joint", f"{b}/paper FID"] == 10.53
    assert t1.loc["official_joint", f"{b}/paper mIoU"] == 67.92 and t1.loc["normal", f"{b}/paper Acc"] == 94.14
    assert t1.loc["official_joint", f"{b}/paper FID delta"] == pytest.approx(10.53 - 23.35)
    assert t1.loc["official_joint", f"{b}/FID"] == 20.0 and t1.loc["official_joint", f"{b}/mIoU"] == 66.0
    tex = (tmp_path / "t" / "table1.tex").read_text()
    assert "paper FID" in tex and "arXiv:2403.09638v1" in tex
    # a benchmark without paper values has no paper columns
    plain = tmp_path / "plain.csv"
    f = _write_score(tmp_path / "n.json", 30.0, 60.0, 90.0)
    assert main(["collect-metrics", "--benchmark", "smoke", "--score", "normal", "0.85", str(f), "--out", str(plain)]) == 0
    assert main(["tables", "--metrics", str(plain), "--table", "1", "--out-dir", str(tmp_path / "p")]) == 0
    assert not any("paper" in c for c in pd.read_csv(tmp_path / "p" / "table1.csv", index_col=0).columns)
