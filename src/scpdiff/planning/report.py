"""The plan of a study: rows per benchmark and stage, a total, printed as a table and written as CSV.

    text = plan_study(configfile="config/config.yaml", out="plan.csv")      # the config's benchmarks
    text = plan_study(benchmarks=["cityscapes"], tflops=989, out=None)     # H100 bf16 FLOP limit

The benchmarks are resolved like the ``Snakefile`` resolves them (the workflow config's
``overrides`` applied), so the plan is the plan of the DAG that config would run.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..config.benchmark import Benchmark
from ..config.settings import study_jobs
from ..config.workflow import import_plugins, resolve_benchmark, resolve_benchmarks, validate_workflow_config
from ..config.yaml_files import read_yaml
from ..errors import ConfigError
from ..utils.files import write_text_atomic
from .model_costs import model_costs
from .stages import PNG_BYTES_PER_PIXEL, StageCost, image_flops, plan_benchmark
from .throughput import SPEED_DIR, choose, scoring_rates

COLUMNS = ["benchmark", "stage", "device", "jobs", "images", "denoiser_evals", "segmenter_passes",
           "inception_passes", "flops", "gpu_hours", "disk_bytes", "note"]
TOTAL = "total"


def load_benchmarks(configfile: str | os.PathLike | None, names: list[str] | None) -> list[Benchmark]:
    """``names`` (benchmark names or YAML paths) with the config's overrides, or the config's own list."""
    config = {"benchmarks": list(names or []), "overrides": {}, "plugins": []}
    if configfile is not None:
        path = Path(configfile)
        if not path.is_file():
            raise ConfigError(f"{path}: workflow config file does not exist")
        config = validate_workflow_config(read_yaml(path), source=str(path))
        import_plugins(config["plugins"], source=f"{path}: plugins")
        if names:
            return [resolve_benchmark(n, config.get("overrides")) for n in names]
        return list(resolve_benchmarks(config, source=str(path)).values())
    if not names:
        raise ConfigError("scpdiff plan: name a --benchmark or a --configfile")
    return [resolve_benchmark(n) for n in names]


def total_row(rows: list[StageCost]) -> StageCost:
    study = "weights, the tables and mu sweep over all benchmarks, all"
    total = StageCost(TOTAL, TOTAL, device="", note=f"incl. {study_jobs()} study-level jobs ({study})")
    for row in rows:
        for key in ("jobs", "images", "denoiser_evals", "segmenter_passes", "inception_passes", "flops", "gpu_hours", "disk_bytes"):
            setattr(total, key, getattr(total, key) + getattr(row, key))
    total.jobs += study_jobs()
    total.images = sum(r.images for r in rows if r.stage == "generate")
    total.note = "images: generated; " + total.note
    return total


def plan_rows(benches: list[Benchmark], gpu: str | None = None, tflops: float | None = None, utilisation: float = 1.0,
              png_bytes: float = PNG_BYTES_PER_PIXEL, speed_dir=SPEED_DIR,
              scoring_device: str | None = None) -> tuple[list[StageCost], list[str]]:
    """(rows incl. the total, one line per benchmark saying what its FLOPs and rate rest on);
    ``scoring_device``: the scoring rows' hours from that device's measured scoring speed."""
    scoring = None
    if scoring_device:
        scoring = scoring_rates(scoring_device, speed_dir)
        if scoring is None:
            raise ConfigError(f"no measured scoring speed for device {scoring_device!r} in {speed_dir}/*.csv "
                              "(run tools/speed/score.py there)")
    rows, basis = [], []
    for bench in benches:
        costs = model_costs(bench)
        rate = choose(gpu, tflops, utilisation, bench.resolution,
                      lambda: image_flops(bench, costs, bench["mu"]["table"]), speed_dir)
        rows += plan_benchmark(bench, costs, rate, png_bytes, scoring)
        basis.append(f"{bench.name}: FLOPs from {costs.source}: UNet+ControlNet step {costs.denoiser_step / 1e12:.4g} TFLOP, "
                     f"VAE decode {costs.vae_decode / 1e12:.4g} TFLOP; GPU rate {rate.tflops:.4g} TFLOPS ({rate.basis}); "
                     f"PNG {png_bytes:g} bytes/pixel")
    return rows + [total_row(rows)], basis


def _human(value: float, unit: str = "") -> str:
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}" if value else "0"


def format_table(rows: list[StageCost]) -> str:
    head = ["benchmark", "stage", "jobs", "images", "UNet+CN evals", "seg passes", "Inception", "FLOPs", "GPU-h", "disk"]
    body = [[r.benchmark, r.stage, str(r.jobs), _human(r.images), _human(r.denoiser_evals), _human(r.segmenter_passes),
             _human(r.inception_passes), _human(r.flops), f"{r.gpu_hours:.3g}" if r.device != "cpu" else "cpu",
             _human(r.disk_bytes, "B")] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(wd) if i < 2 else c.rjust(wd) for i, (c, wd) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * wd for wd in widths])] + [line(b) for b in body])


def to_csv(rows: list[StageCost]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        d = row.as_dict()
        d["flops"] = f"{d['flops']:.6g}"
        d["gpu_hours"] = f"{d['gpu_hours']:.6g}"
        d["disk_bytes"] = f"{d['disk_bytes']:.0f}"
        writer.writerow({k: d[k] for k in COLUMNS})
    return buf.getvalue()


def plan_study(benchmarks: list[str] | None = None, configfile: str | os.PathLike | None = None, gpu: str | None = None,
               tflops: float | None = None, utilisation: float = 1.0, out: str | os.PathLike | None = None,
               png_bytes: float = PNG_BYTES_PER_PIXEL, speed_dir=SPEED_DIR, scoring_device: str | None = None) -> str:
    """The whole ``scpdiff plan``: resolve, count, write ``out`` (CSV, atomically), return the printout."""
    rows, basis = plan_rows(load_benchmarks(configfile, benchmarks), gpu, tflops, utilisation, png_bytes, speed_dir,
                            scoring_device)
    if out is not None:
        write_text_atomic(out, to_csv(rows))
    text = format_table(rows) + "\n\n" + "\n".join(basis)
    return text + (f"\nwritten: {out}" if out is not None else "")
