"""The paper's Tables 1-3 from scored settings, as CSV and booktabs LaTeX (pandas).

The input is one tidy *metrics frame*: a row per scored setting with the columns of
:data:`METRIC_COLUMNS` plus ``benchmark``, ``dataset``, ``prior``, ``mu`` and ``table_mu`` (the
setting is the benchmark's mu for tables). :func:`collect_metrics` builds it from the JSON files
``scpdiff score`` writes; ``results/{bench}/metrics.csv`` stores it.

- Table 1 (:func:`table1`): mIoU, Acc, FID per prior (rows) with one column group per benchmark,
  and the difference to the normal prior (plain ControlNet inference) of every value.
- Table 2 (:func:`table2`): our FID beside the literature values the paper's Table 2 lists
  (``scpdiff/data/table2_literature.csv``).
- Table 3 (:func:`table3`): LPIPS and MS-SSIM diversity per prior (section 5.4).

In the LaTeX the best value of every column is bold (ties: all of them, compared as printed).

Uncertainty (replicates drawn by :mod:`scpdiff.metrics.bootstrap`): every metric carries its bootstrap interval over
label maps (``{metric}_lo``/``_hi``), every setting its paired interval of the difference to the
normal prior at the same mu (``{metric}_delta_lo``/``_hi``; the same resamples on both sides), and,
when the benchmark generates under several ``sampling.seeds``, the standard deviation of the metric
over the seeds (``{metric}_seed_sd``, ``seeds``). A difference whose paired interval excludes zero is
marked in the LaTeX. Reference rows (:data:`REFERENCE_ROWS`) -- the real images (segmenter ceiling,
FID floor at the same sample size) and the VAE's reconstructions -- sit below the priors, with
no difference and never bold.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..utils.intervals import excludes_zero, paired_interval, percentile_interval
from ..utils.files import atomic_path, write_text_atomic

BASELINE_PRIOR = "normal"
ORACLE_PRIOR = "oracle"
METRIC_COLUMNS = ("fid", "kid", "kid_std", "miou", "acc", "lpips", "ms_ssim")
SETTING_COLUMNS = ("benchmark", "dataset", "prior", "mu", "table_mu")
# the metrics with a bootstrap interval, and the columns that carry the uncertainty
INTERVAL_METRICS = ("fid", "kid", "miou", "acc", "lpips", "ms_ssim")
UNCERTAINTY_SUFFIXES = ("_lo", "_hi", "_delta_lo", "_delta_hi", "_seed_sd")
UNCERTAINTY_COLUMNS = (*(m + s for m in INTERVAL_METRICS for s in UNCERTAINTY_SUFFIXES), "seeds",
                       "bootstrap_resamples", "bootstrap_seed", "bootstrap_level")
# rows that are no prior: the bounds any method is read against (computed by the DAG, same scorer)
REAL_IMAGES = "real_images"
VAE_RECONSTRUCTION = "vae_reconstruction"
REFERENCE_ROWS = {REAL_IMAGES: "Real images (reference)", VAE_RECONSTRUCTION: "VAE reconstruction (reference)"}
# datasets whose column in the paper's Table 2 our FID joins
LITERATURE_CSV = Path(__file__).resolve().parents[1] / "data" / "table2_literature.csv"
LITERATURE_DATASETS = {"cityscapes": "Cityscapes", "ade20k": "ADE20K", "cocostuff": "COCO-Stuff"}


@dataclass(frozen=True)
class Metric:
    """How a metric is shown: its header, whether higher is better, and its decimals."""

    column: str
    label: str
    higher_is_better: bool
    decimals: int = 2

    @property
    def arrow(self) -> str:
        return r"$\uparrow$" if self.higher_is_better else r"$\downarrow$"


MIOU = Metric("miou", "mIoU", True)
ACC = Metric("acc", "Acc", True)
FID = Metric("fid", "FID", False)
LPIPS = Metric("lpips", "LPIPS", True, 3)
MS_SSIM = Metric("ms_ssim", "MS-SSIM", False, 3)
TABLE1_METRICS = (MIOU, ACC, FID)
# the paper's own Table 1 values beside ours (a benchmark's `table1: {source, values}`, e.g. the
# released-model benchmarks): columns of the metrics frame, shown when present
PAPER_METRICS = (Metric("paper_miou", "paper mIoU", True), Metric("paper_acc", "paper Acc", True),
                 Metric("paper_fid", "paper FID", False))
PAPER_SOURCE = "paper_source"
TABLE3_METRICS = (LPIPS, MS_SSIM)


# --------------------------------------------------------------------------- reading scores

# metric column -> key in the JSON row ``scpdiff score`` writes (mIoU and accuracy as fractions)
SCORE_KEYS = {
    "fid": "fid",
    "kid": "kid",
    "kid_std": "kid_std",
    "miou": "miou",
    "acc": "pixel_accuracy",
    "lpips": "lpips",
    "ms_ssim": "ms_ssim",
}
# shown in percent, as in the paper
PERCENT_COLUMNS = ("miou", "acc")


@dataclass
class Replicates:
    """The bootstrap replicates of one score file (columns as in the metrics frame) and what pairs them."""

    values: dict[str, np.ndarray]
    key: tuple  # (resamples, seed, level, units digest): equal keys pair up
    level: float


def _load_score(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable score JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a score file must hold a JSON object, got {type(data).__name__}")
    return data


def read_replicates(path: str | os.PathLike) -> list[Replicates]:
    """The bootstrap records of one score file (none for a file scored without), metric columns in
    the frame's units (mIoU and accuracy in percent)."""
    path = Path(path)
    data = _load_score(path)
    column_of = {key: column for column, key in SCORE_KEYS.items()}
    out = []
    for record_key in ("bootstrap", "diversity_bootstrap"):
        rec = data.get(record_key)
        if rec is None:
            continue
        try:
            values = {column_of[k]: np.asarray(v, np.float64) * (100.0 if column_of[k] in PERCENT_COLUMNS else 1.0)
                      for k, v in rec["replicates"].items() if k in column_of}
            key = (int(rec["resamples"]), int(rec["seed"]), float(rec["level"]), str(rec["units_sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: {record_key} record is malformed ({exc})") from exc
        out.append(Replicates(values, key, key[2]))
    return out


def read_score(path: str | os.PathLike) -> dict[str, float]:
    """The metric columns of one ``scpdiff score`` JSON file; absent metrics are NaN.

    mIoU and pixel accuracy come as fractions and are returned in percent (the paper's unit).
    """
    path = Path(path)
    data = _load_score(path)
    out: dict[str, float] = {}
    for column, key in SCORE_KEYS.items():
        value = data.get(key)
        if value is None:
            out[column] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{path}: {key} must be a number, got {value!r}")
        out[column] = float(value) * (100.0 if column in PERCENT_COLUMNS else 1.0)
    return out


def collect_metrics(
    benchmark: str,
    dataset: str,
    mu_table: float,
    fid_scores: Iterable[tuple[str, float, str | os.PathLike]] = (),
    diversity_scores: Iterable[tuple[str, float, str | os.PathLike]] = (),
    seed_scores: Iterable[tuple[str, float, int, str | os.PathLike]] = (),
    reference_scores: Iterable[tuple[str, str | os.PathLike]] = (),
) -> pd.DataFrame:
    """The metrics frame of one benchmark from ``(prior, mu, score.json)`` triples.

    Diversity scores join the row of the same (prior, mu); a setting scored twice is an error.
    ``seed_scores`` (prior, mu, seed, file): the same setting generated under another base seed,
    for the between-seed spread. ``reference_scores`` (row, file): a reference row
    (:data:`REFERENCE_ROWS`), whose files each give the metrics they hold (the real images' mIoU
    and their FID floor come from two files).
    """
    rows: dict[tuple[str, float], dict] = {}
    reps: dict[tuple[str, float], list[Replicates]] = {}
    seed_values: dict[tuple[str, float], list[dict]] = {}

    def new_row(prior, mu):
        return {"benchmark": benchmark, "dataset": dataset, "prior": prior, "mu": mu,
                **{c: math.nan for c in METRIC_COLUMNS}, **{c: math.nan for c in UNCERTAINTY_COLUMNS}}

    def add(key: tuple[str, float], path, fields: Sequence[str] | None) -> None:
        row = rows.setdefault(key, new_row(*key))
        score = read_score(path)
        fields = [c for c in METRIC_COLUMNS if not math.isnan(score[c])] if fields is None else fields
        for c in fields:
            if not math.isnan(row[c]):
                raise InputError(f"{path}: setting {key} of {benchmark!r} was already scored for {c}")
            row[c] = score[c]
        for rec in read_replicates(path):
            reps.setdefault(key, []).append(rec)
            for c, v in rec.values.items():
                if c in fields:
                    row[f"{c}_lo"], row[f"{c}_hi"] = percentile_interval(v, rec.level, row[c])
            row["bootstrap_resamples"], row["bootstrap_seed"], row["bootstrap_level"] = rec.key[:3]

    for prior, mu, path in fid_scores:
        add((str(prior), round(float(mu), 6)), path, ("fid", "kid", "kid_std", "miou", "acc"))
    for prior, mu, path in diversity_scores:
        add((str(prior), round(float(mu), 6)), path, ("lpips", "ms_ssim"))
    for name, path in reference_scores:
        if name not in REFERENCE_ROWS:
            raise InputError(f"{path}: unknown reference row {name!r}; known: {sorted(REFERENCE_ROWS)}")
        add((name, math.nan), path, None)
    for prior, mu, seed, path in seed_scores:
        key = (str(prior), round(float(mu), 6))
        if key not in rows:
            raise InputError(f"{path}: seed {seed} of setting {key} of {benchmark!r} has no primary score")
        seed_values.setdefault(key, []).append(read_score(path))
    _add_seed_spread(rows, seed_values)
    _add_paired_differences(rows, reps)
    frame = pd.DataFrame(list(rows.values()), columns=[*SETTING_COLUMNS, *METRIC_COLUMNS, *UNCERTAINTY_COLUMNS])
    frame["table_mu"] = np.isclose(frame["mu"].astype(float), float(mu_table)) | frame["prior"].isin(REFERENCE_ROWS)
    return frame


def _add_seed_spread(rows: dict, seed_values: dict) -> None:
    """``{metric}_seed_sd``: sample standard deviation over the primary and the other seeds."""
    for key, row in rows.items():
        others = seed_values.get(key, [])
        row["seeds"] = 1 + len(others) if key[0] not in REFERENCE_ROWS else math.nan
        if not others:
            continue
        for c in INTERVAL_METRICS:
            values = np.array([row[c], *[o[c] for o in others]], np.float64)
            if np.isfinite(values).all():
                row[f"{c}_seed_sd"] = float(values.std(ddof=1))


def _add_paired_differences(rows: dict, reps: dict) -> None:
    """Paired interval of each setting's difference to the normal prior at the same mu, where both
    were bootstrapped with the same resamples of the same label maps."""
    for (prior, mu), row in rows.items():
        if prior == BASELINE_PRIOR or prior in REFERENCE_ROWS:
            continue
        for a in reps.get((prior, mu), []):
            for b in reps.get((BASELINE_PRIOR, mu), []):
                if a.key != b.key:
                    continue
                for c in set(a.values) & set(b.values):
                    diff = row[c] - rows[(BASELINE_PRIOR, mu)][c]
                    row[f"{c}_delta_lo"], row[f"{c}_delta_hi"] = paired_interval(a.values[c], b.values[c], a.level, diff)


def read_metrics(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate metrics CSVs (``results/*/metrics.csv``), checking their columns.

    Columns beyond the required ones are kept (a CSV without one gets NaN there), so whatever a
    newer scorer adds flows into the tables built from several benchmarks' CSVs.
    """
    frames = []
    for path in paths:
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{path}: not a readable metrics CSV ({exc})") from exc
        missing = [c for c in (*SETTING_COLUMNS, *METRIC_COLUMNS) if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: metrics CSV lacks columns {missing}")
        for c in UNCERTAINTY_COLUMNS:  # a CSV written before intervals existed
            if c not in frame.columns:
                frame[c] = math.nan
        frame["table_mu"] = frame["table_mu"].astype(str).str.lower().isin(("true", "1"))
        frames.append(frame)
    if not frames:
        raise InputError("no metrics CSV given")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- the tables


def prior_label(prior: str) -> str:
    """'joint' -> 'Joint Prior' (the paper's row names); reference rows by their own names."""
    if prior in REFERENCE_ROWS:
        return REFERENCE_ROWS[prior]
    words = [w.capitalize() for w in prior.split("_") if w]
    return " ".join(words if words[-1:] == ["Prior"] else [*words, "Prior"])


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _table_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    rows = metrics[metrics["table_mu"] & (metrics["prior"] != ORACLE_PRIOR)]
    dup = rows.duplicated(["benchmark", "prior"])
    if dup.any():
        raise InputError(f"metrics hold several table settings for {rows[dup][['benchmark', 'prior']].values.tolist()}")
    return rows


def metric_table(metrics: pd.DataFrame, which: Sequence[Metric], suffix: str = "") -> pd.DataFrame:
    """Priors (rows, in order of appearance; the normal prior first, reference rows last) x
    (benchmark, metric label); ``suffix`` picks a companion column (``_lo``, ``_delta_hi``...)."""
    rows = _table_rows(metrics)
    priors = [p for p in _ordered(rows["prior"]) if p not in REFERENCE_ROWS]
    if BASELINE_PRIOR in priors:
        priors.remove(BASELINE_PRIOR)
        priors.insert(0, BASELINE_PRIOR)
    priors += [p for p in REFERENCE_ROWS if p in set(rows["prior"])]
    benchmarks = _ordered(rows["benchmark"])
    columns = pd.MultiIndex.from_tuples([(b, m.label) for b in benchmarks for m in which], names=["benchmark", "metric"])
    table = pd.DataFrame(np.nan, index=pd.Index(priors, name="prior"), columns=columns)
    for _, r in rows.iterrows():
        for m in which:
            table.loc[r["prior"], (r["benchmark"], m.label)] = r.get(m.column + suffix, np.nan)
    if not suffix:  # a reference row without any of these metrics (Table 3) is left out
        empty = table.index.isin(list(REFERENCE_ROWS)) & table.isna().all(axis=1).to_numpy()
        table = table[~empty]
    else:
        table = table.reindex(metric_table(metrics, which).index)
    return table


def deltas_to_baseline(table: pd.DataFrame, baseline: str = BASELINE_PRIOR) -> pd.DataFrame | None:
    """Each value minus the baseline prior's value in the same column (None without a baseline);
    NaN on the reference rows, which are no method."""
    if baseline not in table.index:
        return None
    deltas = table - table.loc[baseline]
    deltas.loc[deltas.index.isin(list(REFERENCE_ROWS))] = np.nan
    return deltas


def significant_mask(metrics: pd.DataFrame, which: Sequence[Metric]) -> pd.DataFrame:
    """True where the paired interval of the difference to the normal prior excludes zero."""
    lo, hi = metric_table(metrics, which, "_delta_lo"), metric_table(metrics, which, "_delta_hi")
    return pd.DataFrame([[excludes_zero((lo.iat[i, j], hi.iat[i, j])) for j in range(lo.shape[1])]
                         for i in range(lo.shape[0])], index=lo.index, columns=lo.columns, dtype=bool)


def best_mask(table: pd.DataFrame, metrics: Sequence[Metric]) -> pd.DataFrame:
    """True where a value is the best of its column as printed (ties are all best; NaN never);
    reference rows are never best."""
    by_label = {m.label: m for m in metrics}
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    for col in table.columns:
        m = by_label[col[-1] if isinstance(col, tuple) else col]
        shown = table[col].round(m.decimals).where(~table.index.isin(list(REFERENCE_ROWS)))
        if shown.notna().any():
            best = shown.max() if m.higher_is_better else shown.min()
            mask[col] = shown == best
    return mask


def table1_metrics(metrics: pd.DataFrame) -> tuple[Metric, ...]:
    """Table 1's columns: ours, and the paper's values beside them where the metrics carry them."""
    has_paper = any(m.column in metrics.columns and metrics[m.column].notna().any() for m in PAPER_METRICS)
    return TABLE1_METRICS + (PAPER_METRICS if has_paper else ())


def paper_sources(metrics: pd.DataFrame) -> list[str]:
    if PAPER_SOURCE not in metrics.columns:
        return []
    return list(dict.fromkeys(str(s).strip() for s in metrics[PAPER_SOURCE].dropna()))


def table1(metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Table 1: (values, deltas to the normal prior); the paper's values as further columns, their
    deltas to the paper's normal prior as the paper prints them."""
    table = metric_table(metrics, table1_metrics(metrics))
    return table, deltas_to_baseline(table)


def table3(metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Table 3: LPIPS and MS-SSIM diversity, (values, deltas to the normal prior)."""
    table = metric_table(metrics, TABLE3_METRICS)
    return table, deltas_to_baseline(table)


def load_literature(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's Table 2 (``method``, ``Cityscapes``, ``ADE20K``, ``COCO-Stuff``, ``source``)."""
    frame = pd.read_csv(LITERATURE_CSV if path is None else path, comment="#")
    missing = [c for c in ("method", *LITERATURE_DATASETS.values(), "source") if c not in frame.columns]
    if missing:
        raise InputError(f"{path or 'table2_literature.csv'}: lacks columns {missing}")
    return frame


def ours_label(prior: str) -> str:
    if prior == BASELINE_PRIOR:
        return "ControlNet / Normal Prior (ours)"
    return f"SCP-Diff {prior_label(prior)} (ours)"


def table2(metrics: pd.DataFrame, literature: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2: FID per method (rows) and dataset (columns); the paper's rows first, then ours.

    Our benchmark joins the paper's column of its dataset (cityscapes, ade20k, cocostuff) and
    otherwise (the toy benchmarks, a second config of one dataset) gets a column of its own.
    """
    lit = load_literature() if literature is None else literature
    columns = list(LITERATURE_DATASETS.values())
    table = lit.set_index("method")[columns].astype(float)
    table["source"] = lit.set_index("method")["source"]
    rows = _table_rows(metrics)
    rows = rows[~rows["prior"].isin(list(REFERENCE_ROWS))]
    used: set[str] = set()
    column_of: dict[str, str] = {}
    for bench, dataset in rows[["benchmark", "dataset"]].drop_duplicates().itertuples(index=False):
        col = LITERATURE_DATASETS.get(str(dataset))
        if col is None or col in used:
            col = str(bench)
        used.add(col)
        column_of[bench] = col
        if col not in table.columns:
            table.insert(len(table.columns) - 1, col, np.nan)
    for _, r in rows.iterrows():
        label = ours_label(r["prior"])
        if label not in table.index:
            table.loc[label] = np.nan
            table.loc[label, "source"] = "this run"
        table.loc[label, column_of[r["benchmark"]]] = r["fid"]
    table.index.name = "method"
    return table


# --------------------------------------------------------------------------- output


# after a difference whose 95% paired bootstrap interval excludes zero
SIGNIFICANT_MARK = r"$^{\ast}$"
SIGNIFICANCE_NOTE = (r"$^{\ast}$: the paired bootstrap interval of the difference (the same resampled label "
                     r"maps on both sides) excludes zero.")


def latex_escape(text: str) -> str:
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(specials.get(ch, ch) for ch in str(text))


def _format_delta(delta: float, decimals: int) -> str:
    if not np.isfinite(delta):
        return ""
    text = f"{abs(delta):.{decimals}f}"
    sign = "+" if round(delta, decimals) >= 0 else "$-$"
    return f" ({sign}{text})"


def _cells(table: pd.DataFrame, metrics: Sequence[Metric], deltas: pd.DataFrame | None,
           significant: pd.DataFrame | None = None) -> pd.DataFrame:
    by_label = {m.label: m for m in metrics}
    best = best_mask(table, metrics)
    cells = pd.DataFrame("", index=table.index, columns=table.columns, dtype=object)
    for col in table.columns:
        m = by_label[col[-1] if isinstance(col, tuple) else col]
        for row in table.index:
            v = table.loc[row, col]
            if not np.isfinite(v):
                cells.loc[row, col] = "--"
                continue
            text = f"{v:.{m.decimals}f}"
            if best.loc[row, col]:
                text = rf"\textbf{{{text}}}"
            if deltas is not None:
                text += _format_delta(deltas.loc[row, col], m.decimals)
                if significant is not None and significant.loc[row, col] and text.endswith(")"):
                    text += SIGNIFICANT_MARK
            cells.loc[row, col] = text
    return cells


def to_latex(
    table: pd.DataFrame,
    metrics: Sequence[Metric],
    deltas: pd.DataFrame | None = None,
    caption: str = "",
    label: str = "",
    row_labels=prior_label,
    row_header: str = "Method",
    significant: pd.DataFrame | None = None,
) -> str:
    """A booktabs ``table`` environment: values to the metric's decimals, the column's best bold,
    the delta to the baseline in parentheses, marked where ``significant``."""
    cells = _cells(table, metrics, deltas, significant)
    by_label = {m.label: m for m in metrics}
    cells.index = [latex_escape(row_labels(r)) for r in cells.index]
    # the row header sits in the last header row, beside the metric names
    if isinstance(cells.columns, pd.MultiIndex):
        cells.columns = pd.MultiIndex.from_tuples(
            [(latex_escape(b), f"{lab} {by_label[lab].arrow}") for b, lab in cells.columns], names=["", row_header]
        )
    else:
        cells.columns = pd.Index([f"{lab} {by_label[lab].arrow}" for lab in cells.columns], name=row_header)
    styler = cells.style
    return styler.to_latex(
        hrules=True,
        column_format="l" + "c" * len(cells.columns),
        multicol_align="c",
        caption=caption or None,
        label=label or None,
        position_float="centering",
    )


# companion columns of a table's CSV: (metrics-frame suffix, CSV suffix)
CSV_UNCERTAINTY = (("_lo", " lo"), ("_hi", " hi"), ("_delta_lo", " delta lo"), ("_delta_hi", " delta hi"),
                   ("_seed_sd", " seed sd"))


def table_to_csv_frame(table: pd.DataFrame, deltas: pd.DataFrame | None,
                       companions: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Flat columns ``{benchmark}/{metric}``, ``{benchmark}/{metric} delta`` and, from
    ``companions`` (CSV suffix -> table), e.g. ``{benchmark}/{metric} lo``, for spreadsheets."""
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        name = "/".join(str(c) for c in col) if isinstance(col, tuple) else str(col)
        out[name] = table[col]
        if deltas is not None:
            out[f"{name} delta"] = deltas[col]
        for suffix, companion in (companions or {}).items():
            if col in companion.columns and companion[col].notna().any():  # the paper's columns have none
                out[f"{name}{suffix}"] = companion[col]
    return out


def uncertainty_tables(metrics: pd.DataFrame, which: Sequence[Metric]) -> dict[str, pd.DataFrame]:
    """CSV suffix -> table of the intervals, paired difference intervals and seed spread."""
    return {csv: metric_table(metrics, which, suffix) for suffix, csv in CSV_UNCERTAINTY}


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, float_format="%.6g")


def _write_table1(metrics: pd.DataFrame, out: Path, literature) -> None:
    t1, d1 = table1(metrics)
    which = table1_metrics(metrics)
    _write_csv(table_to_csv_frame(t1, d1, uncertainty_tables(metrics, TABLE1_METRICS)), out / "table1.csv")
    sources = paper_sources(metrics)
    paper = (" Columns headed 'paper': the values the paper reports (" + "; ".join(sources) + ")."
             if sources and which != TABLE1_METRICS else "")
    write_text_atomic(out / "table1.tex", to_latex(
        t1, which, d1, label="tab:noise-priors", significant=significant_mask(metrics, which),
        caption="Quantitative comparison of noise priors (Table 1 of SCP-Diff); in parentheses the "
                "difference to the normal prior. " + SIGNIFICANCE_NOTE + latex_escape(paper)))


def _write_table2(metrics: pd.DataFrame, out: Path, literature) -> None:
    t2 = table2(metrics, literature)
    fid_cols = [c for c in t2.columns if c != "source"]
    _write_csv(t2, out / "table2.csv")
    fid_metric = Metric("fid", "FID", False, 1)
    t2_numeric = t2[fid_cols]
    t2_numeric.columns = pd.MultiIndex.from_tuples([(c, "FID") for c in fid_cols])
    write_text_atomic(out / "table2.tex", to_latex(
        t2_numeric, (fid_metric,), None, label="tab:sota", row_labels=str,
        caption="FID of our runs beside the state of the art as reported in Table 2 of SCP-Diff."))


def _write_table3(metrics: pd.DataFrame, out: Path, literature) -> None:
    t3, d3 = table3(metrics)
    _write_csv(table_to_csv_frame(t3, d3, uncertainty_tables(metrics, TABLE3_METRICS)), out / "table3.csv")
    write_text_atomic(out / "table3.tex", to_latex(
        t3, TABLE3_METRICS, d3, label="tab:diversity", significant=significant_mask(metrics, TABLE3_METRICS),
        caption="Diversity of samples from one label map (Table 3 of SCP-Diff): mean pairwise LPIPS "
                "(higher: more diverse) and MS-SSIM (lower: more diverse). " + SIGNIFICANCE_NOTE))


# table number -> writer of table{N}.{csv,tex}
TABLE_WRITERS = {1: _write_table1, 2: _write_table2, 3: _write_table3}


def write_tables(
    metrics: pd.DataFrame,
    out_dir: str | os.PathLike,
    literature: pd.DataFrame | None = None,
    which: Sequence[int] = tuple(TABLE_WRITERS),
) -> list[Path]:
    """Write ``table{N}.{csv,tex}`` for each N in ``which`` into ``out_dir``; returns the paths.

    One benchmark's metrics give its own tables; the metrics of several (``read_metrics`` of their
    CSVs) give the paper's layout, one column group per benchmark. Both go through the same
    builders, so a column added to the metrics frame reaches the per-benchmark and the combined
    tables alike.
    """
    out = Path(out_dir)
    unknown = [n for n in which if n not in TABLE_WRITERS]
    if unknown:
        raise InputError(f"no table {unknown}: the tables are {sorted(TABLE_WRITERS)}")
    written = []
    for n in dict.fromkeys(which):
        TABLE_WRITERS[n](metrics, out, literature)
        written += [out / f"table{n}.{ext}" for ext in ("csv", "tex")]
    return written


def write_metrics(metrics: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        metrics.to_csv(tmp, index=False, float_format="%.6g")


def write_benchmark_metrics(
    bench,
    fid_scores: Iterable[tuple[str, float, str | os.PathLike]],
    diversity_scores: Iterable[tuple[str, float, str | os.PathLike]],
    path: str | os.PathLike,
    seed_scores: Iterable[tuple[str, float, int, str | os.PathLike]] = (),
    reference_scores: Iterable[tuple[str, str | os.PathLike]] = (),
) -> pd.DataFrame:
    """The metrics frame of one benchmark (name, dataset kind, mu for tables) from its score files
    (:func:`collect_metrics`), written as a metrics CSV at ``path``; returns it."""
    metrics = collect_metrics(bench.name, bench["dataset"]["kind"], bench["mu"]["table"],
                              fid_scores, diversity_scores, seed_scores, reference_scores)
    metrics = with_paper_values(metrics, bench.get("table1"))
    write_metrics(metrics, path)
    return metrics


def with_paper_values(metrics: pd.DataFrame, paper: dict | None) -> pd.DataFrame:
    """The benchmark's ``table1: {source, values: {prior: {miou, acc, fid}}}`` (the paper's Table 1,
    as data) as ``paper_*`` columns on the rows of those priors at the table's mu."""
    if not paper or metrics.empty:
        return metrics
    metrics = metrics.copy()
    for m in PAPER_METRICS:
        metrics[m.column] = np.nan
    metrics[PAPER_SOURCE] = None
    at_table = metrics["table_mu"].astype(bool) if "table_mu" in metrics.columns else True
    for prior, values in (paper.get("values") or {}).items():
        rows = (metrics["prior"] == prior) & at_table
        for m in PAPER_METRICS:
            key = m.column.removeprefix("paper_")
            if key in values:
                metrics.loc[rows, m.column] = float(values[key])
        metrics.loc[rows, PAPER_SOURCE] = " ".join(str(paper.get("source", "")).split())
    return metrics


def write_metrics_tables(
    metrics_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    which: Sequence[int] = tuple(TABLE_WRITERS),
    literature_path: str | os.PathLike | None = None,
) -> list[Path]:
    """Tables ``which`` from metrics CSVs (one benchmark: its tables; several: the paper's layout,
    a column group per benchmark) into ``out_dir`` (:func:`write_tables`)."""
    if not metrics_paths:
        raise InputError("nothing to tabulate: give --score files (with --benchmark) or --metrics CSVs")
    literature = load_literature(literature_path) if literature_path else None
    return write_tables(read_metrics(metrics_paths), out_dir, literature, which)
