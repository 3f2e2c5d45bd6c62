"""The authors' released statistics as scpdiff priors: ``official_spatial``, ``official_categorical``,
``official_joint``.

The official toolkit (AIR-DISCOVER/SCP-Diff-Toolkit @ 859f671) writes its reduced statistics with
``noise_prior.py`` as pickled numpy dicts and samples from them in ``noise_prior_inference.py``:

- ``{name}_spatial_mean_std.npy``: ``{"mean", "std"}`` ``[4, h, w]``, population std
  (``noise_prior.py:139-144``); drawn as ``noise * std + mean`` (``noise_prior_inference.py:37-49``).
- ``{name}_categorical_mean_std.npy``: ``{class id: {"mean", "std"}}`` ``[4]``, unbiased std over
  one random token per image and class (``noise_prior.py:104-111``); a token whose id has no entry
  is read as id 255 (``noise_prior_inference.py:57-58``), so it takes the void statistics.
- ``{name}_spatial_class_mean_std.npy``: ``{"mean", "std"}`` ``[256, 4, h, w]`` and ``"count"``
  ``[256, 1, h, w]`` (``noise_prior.py:147-224``); a cell never seen (count 0) takes the spatial
  statistics, every other cell its own, even when seen once (std 0)
  (``noise_prior_inference.py:77-122``, ``fallback="spatial"``, the ``spatial-class-joint`` prior).

The 256 slots are the values of the official label maps (Cityscapes train ids, ADE20K annotation
values 0-150 with 0 'other', COCO-Stuff ids); :func:`official_label_table` maps them onto the
benchmark's class ids, and the slot(s) that map to the ignore label give the statistics of ignored
tokens, which the official code samples like any other id (void is not replaced).

The imported prior is a file-level representation: each file holds the per-token Gaussian for
every class and for the ignore label, with the official fallbacks already applied, as
``table_mean`` / ``table_var`` ``[num_classes + 1, 4, h, w]`` (float64; the last slot is the
ignore label). Sampling needs no new option of the fitted variants; these priors cannot be refitted.

    priors = import_official_priors("statistics/cityscapes", "cs", bench, trust_pickle=True)
    priors["official_joint"].save("work/cityscapes/priors/official_joint.safetensors")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from .base import NoisePrior
from .registry import register

OFFICIAL_FILES = {
    "official_spatial": "{name}_spatial_mean_std.npy",
    "official_categorical": "{name}_categorical_mean_std.npy",
    "official_joint": "{name}_spatial_class_mean_std.npy",
}
OFFICIAL_SLOTS = 256
OFFICIAL_VOID = 255  # the id an unknown categorical key is read as (noise_prior_inference.py:58)


class OfficialPrior(NoisePrior):
    """A per-(label, channel, y, x) Gaussian table imported from the official statistics."""

    needs_fit = True  # read from its file, never built empty for sampling
    imported = True  # the file comes from scpdiff import-priors, not from fitting

    def __init__(self, num_classes, latent_shape, **options):
        super().__init__(num_classes, latent_shape, **options)
        shape = (self.num_classes + 1, *self.latent_shape)
        self._stats = {
            "table_mean": torch.zeros(shape, dtype=torch.float64),
            "table_var": torch.zeros(shape, dtype=torch.float64),
        }

    def set_tables(self, mean: torch.Tensor, var: torch.Tensor) -> "OfficialPrior":
        shape = (self.num_classes + 1, *self.latent_shape)
        for label, t in (("mean", mean), ("var", var)):
            if tuple(t.shape) != shape:
                raise InputError(f"{self.name}: table {label} has shape {tuple(t.shape)}, expected {shape}")
        self._stats = {"table_mean": mean.to(torch.float64).clone(), "table_var": var.to(torch.float64).clone()}
        return self

    @property
    def mean(self) -> torch.Tensor:
        """``[num_classes + 1, channels, h, w]``: class ``c`` at row ``c``, the ignore label last."""
        return self._stats["table_mean"]

    @property
    def var(self) -> torch.Tensor:
        return self._stats["table_var"]

    def _accumulate(self, x, labels):
        raise InputError(f"the {self.name!r} prior holds the authors' statistics (scpdiff import-priors); it cannot be fitted")

    def merge(self, other):
        raise InputError(f"the {self.name!r} prior holds the authors' statistics (scpdiff import-priors); it cannot be merged")

    def token_stats(self, labels):
        C = self.num_classes
        B = labels.shape[0]
        ch, h, w = self.latent_shape
        slot = torch.where(labels == self.ignore_index, C, labels.clamp(0, C - 1))
        idx = slot.view(B, 1, 1, h, w).expand(B, 1, ch, h, w)

        def gather(table):
            return torch.gather(table.float().unsqueeze(0).expand(B, C + 1, ch, h, w), 1, idx).squeeze(1)

        return gather(self.mean), gather(self.var)


@register("official_spatial")
class OfficialSpatialPrior(OfficialPrior):
    """N_spatial (Eq. 5) from ``{name}_spatial_mean_std.npy``."""


@register("official_categorical")
class OfficialCategoricalPrior(OfficialPrior):
    """N_categorical (Eq. 7) from ``{name}_categorical_mean_std.npy``."""


@register("official_joint")
class OfficialJointPrior(OfficialPrior):
    """N_joint (Eq. 8) from ``{name}_spatial_class_mean_std.npy``, count-0 cells spatial."""


# ----------------------------------------------------------------- reading the official files
def official_label_table(kind: str) -> np.ndarray:
    """``[256]`` int64: official label value -> benchmark class id, 255 (ignore) or -1 (undefined).

    The official datasets read the stored mask values as they are: Cityscapes ``*_labelTrainIds.png``
    (toolkit ``datasets/cityscapes.py:55,87``), ADE20K annotation values (``datasets/ade20k.py:43-45``),
    COCO-Stuff ids; scpdiff's label tables map those same values to its class ids. The toy dataset
    stores class ids.
    """
    from ..datasets import class_tables

    tables: dict[str, Callable[[], object]] = {
        "cityscapes": class_tables.cityscapes_train_ids,
        "ade20k": lambda: class_tables.ade20k()[1],
        "cocostuff": lambda: class_tables.cocostuff()[1],
    }
    if kind in tables:
        return np.asarray(tables[kind]().lookup, dtype=np.int64)
    from ..datasets import class_info

    n = class_info(kind).num_classes
    lookup = np.full(OFFICIAL_SLOTS, -1, dtype=np.int64)
    lookup[:n] = np.arange(n)
    lookup[class_tables.IGNORE_INDEX] = class_tables.IGNORE_INDEX
    return lookup


def _read_pickled_dict(path: Path, trust_pickle: bool) -> dict:
    if not path.is_file():
        raise InputError(f"{path}: official statistics file not found")
    if not trust_pickle:
        raise InputError(
            f"{path}: the official statistics are numpy pickles, which can run code when loaded; pass "
            "--trust-pickle if they come from a source you trust (the authors' release page)"
        )
    try:
        obj = np.load(path, allow_pickle=True)
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except Exception as exc:  # numpy raises ValueError/UnpicklingError/EOFError/OSError
        raise InputError(f"{path}: not a readable numpy pickle: {exc}") from exc
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _array(path: Path, obj: dict, key, shape: tuple[int, ...], what: str, nonnegative: bool = False) -> np.ndarray:
    if key not in obj:
        raise InputError(f"{path}: no {what!r} entry (has {sorted(map(str, obj))[:10]})")
    try:
        a = np.asarray(obj[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {what} is not numeric: {exc}") from exc
    if a.shape != shape:
        raise InputError(f"{path}: {what} has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{path}: {what} contains NaN or inf")
    if nonnegative and (a < 0).any():
        raise InputError(f"{path}: {what} has negative values")
    return a


def _slots(lookup: np.ndarray, num_classes: int, ignore_index: int) -> list[list[int]]:
    """For each benchmark class (and last, the ignore label) the official slots that map to it."""
    rows = [np.flatnonzero(lookup == c).tolist() for c in range(num_classes)]
    rows.append(np.flatnonzero(lookup == ignore_index).tolist())
    return rows


def import_official_priors(
    stats_dir: str | os.PathLike, name: str, bench, trust_pickle: bool = False
) -> dict[str, OfficialPrior]:
    """The three official statistics of ``stats_dir`` as priors for ``bench`` (module doc).

    ``stats_dir`` holds ``{name}_spatial_mean_std.npy``, ``{name}_categorical_mean_std.npy`` and
    ``{name}_spatial_class_mean_std.npy`` (the toolkit's ``--stat_dir/--dataset`` folder).
    """
    from ..datasets import num_classes_for

    folder = Path(stats_dir)
    paths = {v: folder / f.format(name=name) for v, f in OFFICIAL_FILES.items()}
    num_classes = num_classes_for(bench)
    ch, h, w = bench.latent_shape
    opts = dict(bench.get("prior_options") or {})
    ignore_index = int(opts.get("ignore_index", 255))
    options = {k: opts[k] for k in ("downsample",) if k in opts}
    lookup = official_label_table(bench["dataset"]["kind"])
    rows = _slots(lookup, num_classes, ignore_index)
    unmapped = [c for c, r in enumerate(rows[:-1]) if len(r) != 1]
    if unmapped:
        raise InputError(f"benchmark classes {unmapped[:10]} have no unique official label value")

    def make(variant: str, mean: np.ndarray, var: np.ndarray) -> OfficialPrior:
        from .registry import create

        prior = create(variant, num_classes, (ch, h, w), ignore_index=ignore_index, **options)
        prior.set_tables(torch.from_numpy(mean), torch.from_numpy(var))
        prior.provenance.update(vae="official statistics", scaling_factor="0.18215", dataset=str(bench["dataset"]["kind"]))
        return prior

    # spatial: one map for every label (noise_prior_inference.py:37-49)
    sp_path = paths["official_spatial"]
    sp = _read_pickled_dict(sp_path, trust_pickle)
    s_mean = _array(sp_path, sp, "mean", (ch, h, w), "mean")
    s_std = _array(sp_path, sp, "std", (ch, h, w), "std", nonnegative=True)

    # joint: its count table also gives the number of reference images (every image puts one label
    # on each cell, so each cell's counts sum to it; the largest sum is taken)
    jt_path = paths["official_joint"]
    jt = _read_pickled_dict(jt_path, trust_pickle)
    j_mean = _array(jt_path, jt, "mean", (OFFICIAL_SLOTS, ch, h, w), "mean")
    j_std = _array(jt_path, jt, "std", (OFFICIAL_SLOTS, ch, h, w), "std", nonnegative=True)
    j_count = _array(jt_path, jt, "count", (OFFICIAL_SLOTS, 1, h, w), "count", nonnegative=True)
    num_images = int(round(j_count.sum(0).max()))

    # categorical: ids without an entry are read as 255 (noise_prior_inference.py:57-58)
    ct_path = paths["official_categorical"]
    ct = _read_pickled_dict(ct_path, trust_pickle)
    cat: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for key, entry in ct.items():
        try:
            slot = int(key)
        except (TypeError, ValueError):
            raise InputError(f"{ct_path}: class key {key!r} is not an integer label value") from None
        if not isinstance(entry, dict):
            raise InputError(f"{ct_path}: entry {key!r} is not a dict with 'mean' and 'std'")
        cat[slot] = (
            _array(ct_path, entry, "mean", (ch,), f"class {key} mean"),
            _array(ct_path, entry, "std", (ch,), f"class {key} std", nonnegative=True),
        )

    def categorical_slot(slot: int) -> tuple[np.ndarray, np.ndarray]:
        key = slot if slot in cat else OFFICIAL_VOID
        if key not in cat:
            raise InputError(
                f"{ct_path}: no statistics for label value {slot} and no entry {OFFICIAL_VOID} to read it as "
                "(the official sampler would fail with a KeyError, noise_prior_inference.py:64)"
            )
        return cat[key]

    n_rows = num_classes + 1
    table = {v: (np.empty((n_rows, ch, h, w)), np.empty((n_rows, ch, h, w))) for v in OFFICIAL_FILES}
    for row, slots in enumerate(rows):
        if not slots:  # no official value maps to the ignore label: ignored tokens never occur there
            slots = [OFFICIAL_VOID]
        slot = slots[0]
        table["official_spatial"][0][row], table["official_spatial"][1][row] = s_mean, s_std**2
        c_mean, c_std = categorical_slot(slot)
        table["official_categorical"][0][row] = c_mean[:, None, None]
        table["official_categorical"][1][row] = (c_std**2)[:, None, None]
        unseen = j_count[slot] == 0  # [1, h, w]: the official count-0 fallback (l. 99-116)
        table["official_joint"][0][row] = np.where(unseen, s_mean, j_mean[slot])
        table["official_joint"][1][row] = np.where(unseen, s_std, j_std[slot]) ** 2
    priors = {}
    for variant, (mean, var) in table.items():
        prior = make(variant, mean, var)
        prior.num_images = num_images
        prior.num_tokens = num_images * h * w
        priors[variant] = prior
    return priors


def write_official_priors(stats_dir, name: str, bench, out_dir, trust_pickle: bool = False) -> list[Path]:
    """:func:`import_official_priors`, each prior saved as ``out_dir/<variant>.safetensors``."""
    priors = import_official_priors(stats_dir, name, bench, trust_pickle=trust_pickle)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for variant, prior in priors.items():
        path = out / f"{variant}.safetensors"
        prior.save(path)
        written.append(path)
    return written
