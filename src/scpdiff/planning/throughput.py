"""The GPU rate that turns a plan's FLOPs into GPU-hours.

Three sources, in the order a user would trust them:

* a measured row of a generation speed CSV (``results/speed/*.csv`` written by
  ``tools/speed/generate.py``, docs/speed.md) whose ``device_name`` contains the ``--gpu`` name:
  its ``achieved_tflops`` (FLOPs of the images it made / wall time) of the fastest ``ok`` row,
  preferring rows at the benchmark's resolution;
* the paper's anchor, ``--gpu paper-a100``: "2.34 seconds per image on A100 GPUs without any
  acceleration techniques" (paper, section 5.2), taken as the time of one image of the benchmark's
  Table-1 setting (``mu.table``, its DDIM steps and guidance), so the rate is that image's FLOPs /
  2.34 s;
* ``--tflops X`` at an assumed utilisation (``--utilisation``, default 1.0: the FLOP limit).

One rate serves every GPU stage (fine-tuning, encoding, generation, scoring), a stated
simplification: generation dominates the study (docs/speed.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError

PAPER_SECONDS_PER_IMAGE_A100 = 2.34  # paper section 5.2
PAPER_A100 = "paper-a100"
SPEED_DIR = Path(__file__).resolve().parents[3] / "results" / "speed"


@dataclass(frozen=True)
class Throughput:
    """Effective TFLOPS (FLOPs actually done per second, 1e12) and where the figure comes from."""

    tflops: float
    basis: str

    def gpu_hours(self, flops: float) -> float:
        return float(flops) / (self.tflops * 1e12) / 3600.0


def from_tflops(tflops: float, utilisation: float = 1.0) -> Throughput:
    if not tflops > 0 or not 0 < utilisation <= 1:
        raise ConfigError(f"--tflops must be > 0 and --utilisation in (0, 1], got {tflops} and {utilisation}")
    return Throughput(tflops * utilisation, f"{tflops:g} TFLOPS peak x {utilisation:g} assumed utilisation")


def paper_a100(flops_per_table_image: float) -> Throughput:
    """The paper's A100 anchor as a rate: one Table-1 image's FLOPs in 2.34 s (module doc)."""
    return Throughput(
        flops_per_table_image / PAPER_SECONDS_PER_IMAGE_A100 / 1e12,
        f"A100 at the paper's 2.34 s/image (sec. 5.2) for one Table-1 image "
        f"({flops_per_table_image / 1e12:.4g} TFLOP)",
    )


def measured(gpu: str, resolution: tuple[int, int], speed_dir: str | Path = SPEED_DIR) -> Throughput | None:
    """The fastest ``ok`` row for ``gpu`` in the generation speed CSVs of ``speed_dir``, or None."""
    best: tuple[tuple[bool, float], dict, Path] | None = None
    for path in sorted(Path(speed_dir).glob("*.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"device_name", "achieved_tflops", "status"} <= set(reader.fieldnames or ()):
                continue  # another tool's CSV (e.g. fit_priors.csv)
            for row in reader:
                if row["status"] != "ok" or gpu.lower() not in row["device_name"].lower() or not row["achieved_tflops"]:
                    continue
                same_size = (row.get("height"), row.get("width")) == tuple(str(v) for v in resolution)
                key = (same_size, float(row["achieved_tflops"]))
                if best is None or key > best[0]:
                    best = (key, row, path)
    if best is None:
        return None
    (_, tflops), row, path = best
    return Throughput(tflops, f"{row['device_name']} measured in {path.name} ({row.get('speed')}, "
                              f"{row.get('height')}x{row.get('width')}, batch {row.get('batch_size')}, {row.get('dtype')})")


def choose(gpu: str | None, tflops: float | None, utilisation: float,
           resolution: tuple[int, int], table_image_flops: Callable[[], float],
           speed_dir: str | Path = SPEED_DIR) -> Throughput:
    """The rate for one benchmark from the command's options (module doc); paper-a100 by default."""
    if tflops is not None:
        return from_tflops(tflops, utilisation)
    if gpu is None or gpu.lower() == PAPER_A100:
        return paper_a100(table_image_flops())
    found = measured(gpu, resolution, speed_dir)
    if found is None:
        raise ConfigError(f"no measured generation speed for GPU {gpu!r} in {speed_dir}/*.csv "
                          f"(run tools/speed/generate.py there, or pass --tflops, or --gpu {PAPER_A100})")
    return found


@dataclass(frozen=True)
class ScoringRates:
    """Measured scoring speed on one device (``tools/speed/score.py`` CSVs): images/s of the
    Inception features and of each segmenter at its protocol scales, LPIPS pairs/s."""

    rates: dict  # "fid_features", "segmentation:<kind>", "lpips" -> per second
    basis: str

    def hours(self, stage: str, count: float) -> float | None:
        rate = self.rates.get(stage)
        return None if not rate else float(count) / rate / 3600.0


def scoring_rates(device: str, speed_dir: str | Path = SPEED_DIR) -> ScoringRates | None:
    """The fastest rows per scoring stage whose ``device`` contains ``device`` in the score speed
    CSVs of ``speed_dir`` (rows with random segmenter weights count: speed does not depend on them)."""
    rates: dict[str, float] = {}
    sources: set[str] = set()
    for path in sorted(Path(speed_dir).glob("*.csv")):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not {"stage", "images_per_s", "device"} <= set(reader.fieldnames or ()):
                continue  # another tool's CSV
            for row in reader:
                if device.lower() not in row["device"].lower() or not row["images_per_s"]:
                    continue
                key = row["stage"] + (f":{row['segmenter']}" if row["stage"] == "segmentation" else "")
                value = float(row["images_per_s"])
                if value > rates.get(key, 0.0):
                    rates[key] = value
                    sources.add(f"{path.name} ({row.get('resolution')})")
    if not rates:
        return None
    return ScoringRates(rates, f"scoring measured on {device!r} in " + ", ".join(sorted(sources)))
