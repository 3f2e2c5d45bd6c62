"""Table 4 from the answers: Average Human Ranking (AHR) per method and question, with the
agreement between participants and a bootstrap interval.

- **AHR** (paper section 5.5): each answer scores every method ``k + 1 - rank`` (1 worst, k best;
  the paper's k = 3). The table shows mean ± standard deviation (``ddof=1``) of those scores over
  all answers, as the paper's "2.62±0.36".
- **Bootstrap interval**: participants are resampled with replacement (their answers move
  together, since one person's rankings are not independent), ``n_boot`` times; the interval is
  the percentile interval of the resampled AHR means.
- **Kendall's W** (coefficient of concordance) per group and question over the m >= 2
  participants who ranked it: ``W = 12 S / (m^2 (k^3 - k))`` with ``S`` the sum of squared
  deviations of the methods' rank sums from their mean ``m (k + 1) / 2`` (no ties: each rank is
  used once); the table reports the mean over such groups. 1 is full agreement, 0 none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..reporting.tables import latex_escape
from ..utils.files import atomic_path, write_text_atomic
from .store import AnswerStore
from .study import QUESTION_KEYS, load_study

# the paper's column headers (Table 4)
QUESTION_HEADERS = {"quality": "Result Quality", "fidelity": "Condition Fidelity"}
COLUMNS = ("participant", "group", "question", "image", "method", "rank")


def answer_frame(study_dir: str | os.PathLike) -> tuple[pd.DataFrame, object]:
    """(one row per ranked image: participant, group, question, image, method, rank, score; the study)."""
    study = load_study(study_dir)
    if not study.database.exists():
        raise InputError(f"{study.database}: no answers database yet (scpdiff user-study invite / serve)")
    store = AnswerStore(study.database, study.study_id)
    frame = pd.DataFrame(store.rank_rows(), columns=list(COLUMNS))
    if frame.empty:
        raise InputError(f"{study.database}: no answers yet")
    frame["score"] = study.k + 1 - frame["rank"]
    return frame, study


def ahr(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """mean, std (ddof=1) and n of the AHR score per method (rows, table order) and question."""
    stats = frame.groupby(["method", "question"])["score"].agg(["mean", "std", "count"])
    stats["std"] = stats["std"].fillna(0.0)  # a single answer: no spread
    out = stats.unstack("question").swaplevel(axis=1).sort_index(axis=1)
    return out.reindex(index=methods)


def bootstrap_interval(frame: pd.DataFrame, methods: list[str], n_boot: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> pd.DataFrame:
    """Percentile interval of the AHR mean per (method, question), resampling participants."""
    sums = frame.pivot_table(index="participant", columns=["question", "method"], values="score", aggfunc="sum",
                             fill_value=0)
    counts = frame.pivot_table(index="participant", columns=["question", "method"], values="score",
                               aggfunc="count", fill_value=0)
    n = len(sums)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # [B, P]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ sums.to_numpy(float)) / (weights @ counts.to_numpy(float))  # [B, question x method]
    alpha = (1.0 - confidence) / 2.0
    low = np.nanquantile(means, alpha, axis=0)
    high = np.nanquantile(means, 1.0 - alpha, axis=0)
    out = pd.DataFrame({"ci_low": low, "ci_high": high}, index=sums.columns)
    return out.unstack("question").swaplevel(axis=1).sort_index(axis=1).reindex(index=methods)


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's W of an ``[m raters, k objects]`` matrix of ranks without ties."""
    ranks = np.asarray(ranks, dtype=np.float64)
    m, k = ranks.shape
    if m < 2 or k < 2:
        raise ValueError("Kendall's W needs at least two raters and two objects")
    totals = ranks.sum(axis=0)
    s = float(((totals - m * (k + 1) / 2.0) ** 2).sum())
    return 12.0 * s / (m**2 * (k**3 - k))


def agreement(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per question: mean Kendall's W over the groups ranked by two participants or more."""
    rows = []
    for question in QUESTION_KEYS:
        ws = []
        sub = frame[frame["question"] == question]
        for _, g in sub.groupby("group"):
            matrix = g.pivot(index="participant", columns="method", values="rank").reindex(columns=methods)
            if len(matrix) >= 2:
                ws.append(kendall_w(matrix.to_numpy()))
        rows.append({"question": question, "kendall_w": float(np.mean(ws)) if ws else float("nan"),
                     "w_groups": len(ws)})
    return pd.DataFrame(rows).set_index("question")


def table4(frame: pd.DataFrame, methods: list[str], n_boot: int = 2000, confidence: float = 0.95,
           seed: int = 0) -> pd.DataFrame:
    """One row per method: ``{question}_ahr``, ``_std``, ``_ci_low``, ``_ci_high`` and ``answers``."""
    stats = ahr(frame, methods)
    ci = bootstrap_interval(frame, methods, n_boot, confidence, seed)
    out = pd.DataFrame(index=pd.Index(methods, name="method"))
    for q in QUESTION_KEYS:
        out[f"{q}_ahr"] = stats[(q, "mean")]
        out[f"{q}_std"] = stats[(q, "std")]
        out[f"{q}_ci_low"] = ci[(q, "ci_low")]
        out[f"{q}_ci_high"] = ci[(q, "ci_high")]
    out["answers"] = stats[(QUESTION_KEYS[0], "count")].fillna(0).astype(int)
    return out


def latex_cells(table: pd.DataFrame) -> pd.DataFrame:
    """mean±std per method (rows) and question (columns), the best mean of each question bold."""
    cells = pd.DataFrame(index=[latex_escape(m) for m in table.index])
    for q in QUESTION_KEYS:
        means, stds = table[f"{q}_ahr"], table[f"{q}_std"]
        best = means.round(2).max()
        texts = []
        for mean, std in zip(means, stds):
            text = f"{mean:.2f}$\\pm${std:.2f}"
            texts.append(rf"\textbf{{{text}}}" if round(mean, 2) == best else text)
        cells[f"{QUESTION_HEADERS[q]} $\\uparrow$"] = texts
    return cells


def _summary_text(summary: dict) -> str:
    w = summary["kendall_w"]
    w_text = ", ".join(f"{QUESTION_HEADERS[q].lower()} " + ("n/a" if w[q] is None else f"{w[q]:.2f}")
                       for q in QUESTION_KEYS)
    return (f"{summary['answers']} answers from {summary['participants']} "
            f"participant{'s' if summary['participants'] != 1 else ''} on "
            f"{summary['groups_answered']} of {summary['groups']} groups; Kendall's W {w_text}")


def to_latex(table: pd.DataFrame, summary: dict, k: int) -> str:
    """The paper's Table 4: mean±std per method and question, the best mean bold."""
    cells = latex_cells(table)
    cells.columns.name = "Method"
    caption = (f"Results of user study: Average Human Ranking (1 to {k}, {k} best), mean $\\pm$ std over "
               f"{_summary_text(summary)}.")
    return cells.style.to_latex(hrules=True, column_format="l" + "c" * len(cells.columns), caption=caption,
                                label="tab:user_study", position_float="centering")


def write_table4(study_dir: str | os.PathLike, out_dir: str | os.PathLike, n_boot: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> list[Path]:
    """``table4.csv``, ``table4.tex`` and ``table4_summary.json`` in ``out_dir``."""
    frame, study = answer_frame(study_dir)
    table = table4(frame, study.methods, n_boot, confidence, seed)
    agree = agreement(frame, study.methods)
    summary = {
        "benchmark": study.benchmark,
        "methods": study.methods,
        "participants": int(frame["participant"].nunique()),
        "groups": len(study.groups),
        "groups_answered": int(frame["group"].nunique()),
        "answers": int(frame[["participant", "group"]].drop_duplicates().shape[0]),
        # None: no group was ranked by two participants
        "kendall_w": {q: None if np.isnan(w) else float(w) for q, w in agree["kendall_w"].items()},
        "kendall_w_groups": {q: int(agree.loc[q, "w_groups"]) for q in QUESTION_KEYS},
        "bootstrap": {"resampled": "participants", "n_boot": n_boot, "confidence": confidence, "seed": seed},
        "study_id": study.study_id,
    }
    out = Path(out_dir)
    paths = [out / "table4.csv", out / "table4.tex", out / "table4_summary.json"]
    with atomic_path(paths[0]) as tmp:
        table.to_csv(tmp, float_format="%.6g")
    write_text_atomic(paths[1], to_latex(table, summary, study.k))
    write_text_atomic(paths[2], json.dumps(summary, indent=2) + "\n")
    return paths


def write_study_table4(table_dirs: list[str | os.PathLike], out_dir: str | os.PathLike) -> list[Path]:
    """``table4.csv`` and ``table4.tex`` over every benchmark with a study, from each benchmark's
    ``table4/`` folder (``write_table4``'s outputs): one benchmark's files as they are, several as
    one table with a column group per benchmark (the layout of the paper's Tables 1-3)."""
    out = Path(out_dir)
    paths = [out / "table4.csv", out / "table4.tex"]
    if not table_dirs:
        raise InputError(f"{out}: no benchmark has a Table 4 (no study has answers)")
    tables, summaries = {}, {}
    for folder in map(Path, table_dirs):
        for name in ("table4.csv", "table4.tex", "table4_summary.json"):
            if not (folder / name).is_file():
                raise InputError(f"{folder / name}: missing (scpdiff user-study results writes it)")
        summary = json.loads((folder / "table4_summary.json").read_text())
        bench = summary.get("benchmark") or folder.parent.name
        if bench in tables:
            raise InputError(f"{folder}: a second Table 4 of benchmark {bench!r}")
        tables[bench] = pd.read_csv(folder / "table4.csv", index_col="method")
        summaries[bench] = summary
    if len(tables) == 1:
        folder = Path(table_dirs[0])
        write_text_atomic(paths[0], (folder / "table4.csv").read_text())
        write_text_atomic(paths[1], (folder / "table4.tex").read_text())
        return paths
    combined = pd.concat(tables, names=["benchmark", "method"])
    with atomic_path(paths[0]) as tmp:
        combined.to_csv(tmp, float_format="%.6g")
    # methods in first-seen order; a method missing from a benchmark's study is left blank
    methods = list(dict.fromkeys(m for t in tables.values() for m in t.index))
    cells = pd.concat({latex_escape(b): latex_cells(t.reindex([m for m in methods if m in t.index]))
                       for b, t in tables.items()}, axis=1)
    cells = cells.reindex([latex_escape(m) for m in methods]).fillna("--")
    ks = {len(s["methods"]) for s in summaries.values()}
    scale = f"1 to {ks.pop()}" if len(ks) == 1 else "1 to k, k methods"
    caption = (f"Results of user study: Average Human Ranking ({scale}, higher is better), mean $\\pm$ std; "
               + "; ".join(f"{latex_escape(b)}: {_summary_text(s)}" for b, s in summaries.items()) + ".")
    tex = cells.style.to_latex(hrules=True, column_format="l" + "c" * len(cells.columns), caption=caption,
                               label="tab:user_study", position_float="centering", multicol_align="c")
    write_text_atomic(paths[1], tex)
    return paths
