"""The paper's figures from the metrics frame (see :mod:`.tables`) with matplotlib.

- :func:`mu_sweep_figure` -- Fig. 8: FID (top) and mIoU (bottom) against mu for each prior,
  one column per benchmark, with the bootstrap intervals as bands and the reference rows (real
  images, VAE reconstruction) as horizontal lines with theirs.
- :func:`oracle_figure` -- Fig. 3: FID against mu when denoising from the real latent noised to
  mu*T (the oracle prior, Eq. 4), with the normal prior (mu = 1) as a dotted line.
- :func:`samples_figure` -- Fig. 7: label mask, real image and one sample per prior, per row.

Every ``*_data`` function returns the exact numbers a figure draws, written beside it as CSV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..utils.files import atomic_path
from .tables import BASELINE_PRIOR, ORACLE_PRIOR, REFERENCE_ROWS, prior_label

SWEEP_COLUMNS = ("fid", "fid_lo", "fid_hi", "miou", "miou_lo", "miou_hi")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # jobs run without a display
    import matplotlib.pyplot as plt

    return plt


def mu_sweep_data(metrics: pd.DataFrame) -> pd.DataFrame:
    """benchmark, prior, mu, fid, miou and their interval bounds of every compared prior (the oracle
    excluded), sorted by mu; the reference rows follow with mu empty."""
    rows = metrics[metrics["prior"] != ORACLE_PRIOR]
    data = rows.reindex(columns=["benchmark", "prior", "mu", *SWEEP_COLUMNS]).copy()
    priors = [p for p in dict.fromkeys(rows["prior"]) if p not in REFERENCE_ROWS]
    order = {p: i for i, p in enumerate([*priors, *REFERENCE_ROWS])}
    data["_order"] = data["prior"].map(order)
    data = data.sort_values(["benchmark", "_order", "mu"], kind="stable").drop(columns="_order")
    return data.reset_index(drop=True)


def oracle_data(metrics: pd.DataFrame) -> pd.DataFrame:
    """benchmark, prior, mu, fid of the oracle prior over its grid and the normal prior at mu = 1."""
    oracle = metrics[metrics["prior"] == ORACLE_PRIOR]
    normal = metrics[(metrics["prior"] == BASELINE_PRIOR) & np.isclose(metrics["mu"].astype(float), 1.0)]
    data = pd.concat([oracle, normal])[["benchmark", "prior", "mu", "fid"]]
    return data.sort_values(["benchmark", "prior", "mu"], kind="stable").reset_index(drop=True)


def mu_sweep_figure(data: pd.DataFrame):
    plt = _pyplot()
    benchmarks = list(dict.fromkeys(data["benchmark"]))
    panels = [("fid", "FID $\\downarrow$"), ("miou", "mIoU $\\uparrow$")]
    fig, axes = plt.subplots(len(panels), max(1, len(benchmarks)), figsize=(4.2 * max(1, len(benchmarks)), 6.4),
                             squeeze=False, sharex=True)
    for j, bench in enumerate(benchmarks):
        sub = data[data["benchmark"] == bench]
        for i, (column, ylabel) in enumerate(panels):
            ax = axes[i, j]
            for prior in dict.fromkeys(sub["prior"]):
                line = sub[sub["prior"] == prior].dropna(subset=[column])
                if not len(line):
                    continue
                if prior in REFERENCE_ROWS:
                    _reference_line(ax, line.iloc[0], column, prior)
                    continue
                (drawn,) = ax.plot(line["mu"], line[column], marker="o", label=prior_label(prior))
                band = line.dropna(subset=[f"{column}_lo", f"{column}_hi"])
                if len(band) > 1:
                    ax.fill_between(band["mu"], band[f"{column}_lo"], band[f"{column}_hi"],
                                    color=drawn.get_color(), alpha=0.2, linewidth=0)
                elif len(band):  # one mu: a band would have no width
                    ax.vlines(band["mu"], band[f"{column}_lo"], band[f"{column}_hi"], color=drawn.get_color(), alpha=0.5)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"{bench}")
            if i == len(panels) - 1:
                ax.set_xlabel(r"denoising steps $\mu$ (fraction of $T$)")
    if benchmarks:
        axes[0, 0].legend(fontsize="small")
    fig.suptitle(r"Effect of the denoising steps $\mu T$ (Fig. 8)")
    fig.tight_layout()
    return fig


def _reference_line(ax, row, column: str, prior: str) -> None:
    """A reference row across the panel: a dashed line, its interval as a band."""
    style = {"real_images": ("black", "--"), "vae_reconstruction": ("grey", "-.")}.get(prior, ("grey", ":"))
    ax.axhline(float(row[column]), color=style[0], linestyle=style[1], linewidth=1, label=prior_label(prior))
    lo, hi = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if pd.notna(lo) and pd.notna(hi):
        ax.axhspan(float(lo), float(hi), color=style[0], alpha=0.08, linewidth=0)


def oracle_figure(data: pd.DataFrame):
    plt = _pyplot()
    benchmarks = list(dict.fromkeys(data["benchmark"]))
    fig, axes = plt.subplots(1, max(1, len(benchmarks)), figsize=(4.5 * max(1, len(benchmarks)), 3.6), squeeze=False)
    for j, bench in enumerate(benchmarks):
        ax = axes[0, j]
        sub = data[data["benchmark"] == bench]
        oracle = sub[sub["prior"] == ORACLE_PRIOR].dropna(subset=["fid"])
        ax.plot(oracle["mu"], oracle["fid"], marker="o", color="tab:blue",
                label=r"denoising from $\mathcal{N}_{x_0,\mu T}$ (oracle)")
        normal = sub[sub["prior"] == BASELINE_PRIOR].dropna(subset=["fid"])
        if len(normal):
            ax.axhline(float(normal["fid"].iloc[0]), color="saddlebrown", linestyle=":",
                       label=r"denoising from $\mathcal{N}_\mathrm{normal}$")
        ax.set_title(bench)
        ax.set_xlabel(r"diffusion & denoising steps $\mu$ (fraction of $T$)")
        ax.set_ylabel(r"FID $\downarrow$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("The oracle prior against the normal prior (Fig. 3)")
    fig.tight_layout()
    return fig


@dataclass
class SampleRow:
    """One row of Fig. 7: a label map's name, its colour-coded mask, the real image, the samples."""

    name: str
    mask_rgb: np.ndarray  # uint8 [H, W, 3]
    image: np.ndarray  # uint8 [H, W, 3]
    samples: Mapping[str, np.ndarray | None] = field(default_factory=dict)  # prior -> uint8 image


def samples_figure(rows: Sequence[SampleRow], priors: Sequence[str]):
    plt = _pyplot()
    columns = ["Label mask", "Real image", *[prior_label(p) for p in priors]]
    h, w = rows[0].image.shape[:2] if rows else (1, 2)
    cell = 2.2
    fig, axes = plt.subplots(max(1, len(rows)), len(columns), squeeze=False,
                             figsize=(cell * len(columns) * w / max(h, w) * 1.4, cell * max(1, len(rows)) * h / max(h, w) * 1.4))
    for i, row in enumerate(rows):
        images = [row.mask_rgb, row.image, *[row.samples.get(p) for p in priors]]
        for j, img in enumerate(images):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(img)
            if i == 0:
                ax.set_title(columns[j], fontsize="small")
            if j == 0:
                ax.set_ylabel(row.name, fontsize="x-small")
    fig.suptitle("Qualitative comparison of noise priors (Fig. 7)")
    fig.tight_layout()
    return fig


def save_figure(fig, paths: Sequence[str | os.PathLike], dpi: int = 150) -> None:
    """Save to every path (format from its suffix), each atomically."""
    plt = _pyplot()
    try:
        for path in paths:
            path = Path(path)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


def write_csv(data: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        data.to_csv(tmp, index=False, float_format="%.6g")
