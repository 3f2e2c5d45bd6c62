"""Figures 3, 7, 8 from hand-built metrics: the plotted numbers (CSV) and the written images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from scpdiff.cli import main
from scpdiff.errors import InputError
from scpdiff.reporting import plots
from scpdiff.reporting.tables import METRIC_COLUMNS, SETTING_COLUMNS


def _metrics() -> pd.DataFrame:
    rows = []
    for prior, base in (("normal", 30.0), ("joint", 15.0)):
        for mu in (1.0, 0.5, 0.85):  # unsorted on purpose
            rows.append(dict(benchmark="toy", dataset="toy", prior=prior, mu=mu, table_mu=mu == 0.85,
                             fid=base + 10 * (mu - 0.85) ** 2, miou=40.0 + mu, acc=80.0))
    for mu, fid in ((0.25, 5.0), (0.5, 8.0), (1.0, 28.0)):
        rows.append(dict(benchmark="toy", dataset="toy", prior="oracle", mu=mu, table_mu=False, fid=fid, miou=60.0, acc=90.0))
    frame = pd.DataFrame(rows)
    for c in (*SETTING_COLUMNS, *METRIC_COLUMNS):
        if c not in frame:
            frame[c] = np.nan
    return frame[[*SETTING_COLUMNS, *METRIC_COLUMNS]]


def test_mu_sweep_data_excludes_the_oracle_and_sorts_by_mu():
    data = plots.mu_sweep_data(_metrics())
    assert set(data["prior"]) == {"normal", "joint"}
    assert data[data["prior"] == "joint"]["mu"].tolist() == [0.5, 0.85, 1.0]
    joint = data[data["prior"] == "joint"].set_index("mu")
    assert joint.loc[0.85, "fid"] == pytest.approx(15.0)
    assert joint.loc[1.0, "fid"] == pytest.approx(15.0 + 10 * 0.15**2)


def test_oracle_data_is_the_oracle_grid_and_the_normal_prior_at_mu_1():
    data = plots.oracle_data(_metrics())
    assert data[data["prior"] == "oracle"]["mu"].tolist() == [0.25, 0.5, 1.0]
    normal = data[data["prior"] == "normal"]
    assert normal["mu"].tolist() == [1.0]
    assert normal["fid"].iloc[0] == pytest.approx(30.0 + 10 * 0.15**2)


def _is_image(path, min_size=(200, 150)):
    with Image.open(path) as im:
        return im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def test_plot_commands_write_images_and_the_plotted_numbers(tmp_path):
    metrics = tmp_path / "metrics.csv"
    _metrics().to_csv(metrics, index=False)
    out = tmp_path / "out"
    assert main(["plots", "mu-sweep", "--metrics", str(metrics), "--out", str(out / "mu.png"), str(out / "mu.pdf"),
                 "--csv", str(out / "mu.csv")]) == 0
    assert _is_image(out / "mu.png")
    assert (out / "mu.pdf").read_bytes().startswith(b"%PDF")
    pd.testing.assert_frame_equal(pd.read_csv(out / "mu.csv"), plots.mu_sweep_data(_metrics()), check_dtype=False)
    assert main(["plots", "oracle", "--metrics", str(metrics), "--out", str(out / "oracle.png"),
                 "--csv", str(out / "oracle.csv")]) == 0
    assert _is_image(out / "oracle.png")
    assert pd.read_csv(out / "oracle.csv")["prior"].tolist() == ["normal", "oracle", "oracle", "oracle"]
    # no temporary files left behind (atomic writes)
    assert sorted(p.name for p in out.iterdir()) == ["mu.csv", "mu.pdf", "mu.png", "oracle.csv", "oracle.png"]


def test_oracle_plot_without_oracle_settings_fails_clearly(tmp_path, capsys):
    metrics = tmp_path / "metrics.csv"
    frame = _metrics()
    frame[frame["prior"] != "oracle"].to_csv(metrics, index=False)
    assert main(["plots", "oracle", "--metrics", str(metrics), "--out", str(tmp_path / "o.png")]) == 1
    assert "no oracle prior" in capsys.readouterr().err


def test_samples_grid_shows_mask_real_image_and_each_prior(tmp_path, monkeypatch):
    from scpdiff.config.benchmark import load_benchmark
    from scpdiff.datasets import open_dataset
    from scpdiff.datasets.toy import write_toy_dataset
    from scpdiff.reporting.samples import load_sample_rows

    root = tmp_path / "data"
    write_toy_dataset(root, num_train=1, num_val=3, resolution=(64, 128), seed=0)
    bench = load_benchmark("smoke")
    bench["dataset"] = dict(bench["dataset"], root=str(root))
    ds = open_dataset("toy", root=str(root), split="val", resolution=(64, 128))
    names = [ds[i][2] for i in range(3)]
    dirs = {}
    for k, prior in enumerate(("normal", "joint")):
        d = tmp_path / prior
        d.mkdir()
        for j, name in enumerate(names[1:]):  # the first map was not generated
            Image.fromarray(np.full((64, 128, 3), 40 * k + j, np.uint8)).save(d / f"{name}_00.png")
        dirs[prior] = d
    rows = load_sample_rows(bench, dirs, rows=5)
    assert [r.name for r in rows] == names[1:]
    image, mask, _ = ds[1]
    np.testing.assert_array_equal(rows[0].image, image)
    # the mask is drawn in the dataset's palette
    np.testing.assert_array_equal(rows[0].mask_rgb[mask != 255], ds.classes.palette[mask[mask != 255]])
    assert rows[1].samples["joint"][0, 0, 0] == 41
    fig = plots.samples_figure(rows, list(dirs))
    assert len(fig.axes) == 2 * 4
    plots.save_figure(fig, [tmp_path / "grid.png"])
    assert _is_image(tmp_path / "grid.png")
    with pytest.raises(InputError, match="no generated image"):
        load_sample_rows(bench, {"normal": tmp_path}, rows=2)


def test_mu_sweep_draws_bands_and_reference_lines(tmp_path):
    frame = _metrics()
    frame["fid_lo"], frame["fid_hi"] = frame["fid"] - 1.0, frame["fid"] + 2.0
    ref = frame.iloc[[0]].assign(prior="real_images", mu=np.nan, fid=5.0, fid_lo=4.0, fid_hi=6.5, miou=np.nan)
    data = plots.mu_sweep_data(pd.concat([frame, ref], ignore_index=True))
    assert data["prior"].iloc[-1] == "real_images" and np.isnan(data["mu"].iloc[-1])
    fig = plots.mu_sweep_figure(data)
    ax = fig.axes[0]
    # one band per prior (its interval, vertices at fid_lo/fid_hi), one span for the real images
    bands = [c for c in ax.collections]
    assert len(bands) == 2
    joint = data[data["prior"] == "joint"]
    ys = bands[1].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(joint["fid_lo"].min()) and ys.max() == pytest.approx(joint["fid_hi"].max())
    assert any(line.get_label() == "Real images (reference)" and line.get_ydata()[0] == 5.0 for line in ax.lines)
    assert any(p.get_y() == pytest.approx(4.0) and p.get_height() == pytest.approx(2.5) for p in ax.patches)
    plots.save_figure(fig, [tmp_path / "mu.png"])
