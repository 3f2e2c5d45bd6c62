"""``scpdiff user-study build``: N label maps of the validation split, one image per method each.

The paper's study (section 5.5) ranks 500 groups of three methods: OASIS, ControlNet (the normal
prior, plain inference) and SCP-Diff (the joint prior). A method is either one of our settings,
``[LABEL=]PRIOR:MU``, read from the workflow's samples ``{work}/{bench}/samples/{prior}/mu{mu}/fid/``
(one folder per shard), or any folder of images named after the label maps, ``[LABEL=]DIR`` (the
outputs of OASIS or any other method; the naming of :mod:`scpdiff.metrics.images`: ``{name}.png``
or ``{name}_{k:02d}.png``, where the first sample is taken). Groups are drawn at random (``seed``)
among the label maps every method has an image for.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..config.settings import sample_mu
from ..errors import InputError
from ..utils.files import atomic_dir
from ..utils.hashing import sha256_file
from .study import DATABASE_FILE, MANIFEST_COLUMNS, MANIFEST_FILE, QUESTIONS, STUDY_FILE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SAMPLE = re.compile(r"^(?P<name>.+)_(?P<k>\d{2,})$")
_SETTING = re.compile(r"^(?P<prior>[A-Za-z0-9_]+):(?P<mu>[0-9]+(\.[0-9]+)?)$")


@dataclass(frozen=True)
class MethodSource:
    label: str  # the method's name in the manifest and the table
    folder: Path  # images directly inside or in one level of sub-folders (shards)


def setting_folder(work_dir: str | os.PathLike, bench: Mapping, prior: str, mu: str) -> Path:
    """Where the workflow's ``generate`` rule puts the FID samples of (prior, mu): the folder of
    the mu whose images the setting reads (:func:`scpdiff.config.settings.sample_mu`; under the
    protocol's ``normal_prior_start: controlnet`` the normal prior at any mu is the one setting
    generated at mu = 1)."""
    return Path(work_dir) / bench["name"] / "samples" / prior / f"mu{sample_mu(bench, prior, mu)}" / "fid"


def parse_methods(settings: Sequence[str], image_dirs: Sequence[str], work_dir: str | os.PathLike,
                  bench: Mapping) -> list[MethodSource]:
    """``--images [LABEL=]DIR`` (first, as OASIS heads the paper's table) then ``--methods
    [LABEL=]PRIOR:MU``, in the order given."""
    methods: list[MethodSource] = []
    for item in image_dirs:
        label, sep, folder = item.partition("=")
        if not sep:  # a bare folder is named after itself
            label, folder = Path(item).name, item
        if not label or not folder:
            raise InputError(f"--images {item!r}: expected [LABEL=]DIR")
        methods.append(MethodSource(label, Path(folder)))
    for item in settings:
        label, sep, spec = item.rpartition("=")
        m = _SETTING.match(spec)
        if not m:
            raise InputError(f"--methods {item!r}: expected [LABEL=]PRIOR:MU, e.g. joint:0.85")
        methods.append(MethodSource(label if sep else spec, setting_folder(work_dir, bench, m["prior"], m["mu"])))
    labels = [m.label for m in methods]
    if len(labels) < 2:
        raise InputError("a ranking study needs at least two methods (--methods / --images)")
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise InputError(f"method label(s) {repeated} given twice")
    for m in methods:
        if not m.folder.is_dir():
            raise InputError(f"method {m.label}: {m.folder} is not a folder of images")
    return methods


def index_images(folder: Path, names: set[str]) -> dict[str, Path]:
    """label map name -> image in ``folder`` or its sub-folders (``{name}`` before ``{name}_{k}``)."""
    found: dict[str, tuple[int, Path]] = {}
    dirs = [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith(".") or not p.is_file():
                continue
            m = _SAMPLE.match(p.stem)
            if p.stem in names:
                key = (p.stem, -1)
            elif m and m["name"] in names:
                key = (m["name"], int(m["k"]))
            else:
                continue
            if key[0] not in found or key[1] < found[key[0]][0]:
                found[key[0]] = (key[1], p)
    return {name: p for name, (_, p) in found.items()}


def _dataset_index(ds) -> dict[str, int]:
    from ..reporting.samples import dataset_names

    names = dataset_names(ds)
    if names is None:
        names = [ds[i][2] for i in range(len(ds))]
    return {name: i for i, name in enumerate(names)}


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def build_study(bench, methods: Sequence[MethodSource], groups: int, seed: int, out: str | os.PathLike) -> Path:
    """Write the study folder ``out`` (atomically) and return it.

    An existing study with an answers database is never replaced: its answers belong to its
    manifest, and a rebuilt study would silently orphan them.
    """
    from ..reporting.samples import mask_colours, open_validation_split

    out = Path(out)
    if (out / DATABASE_FILE).exists():
        raise InputError(f"{out / DATABASE_FILE} exists: this study has participants; move the folder away "
                         "or choose another --out before building a new study")
    if groups < 1:
        raise InputError(f"--groups must be at least 1, got {groups}")
    ds = open_validation_split(bench)
    order = _dataset_index(ds)
    per_method = {m.label: index_images(m.folder, set(order)) for m in methods}
    common = [n for n in order if all(n in found for found in per_method.values())]
    if len(common) < groups:
        counts = ", ".join(f"{label}: {len(found)}" for label, found in per_method.items())
        raise InputError(f"{groups} groups asked for, but only {len(common)} label maps of {bench.name}'s "
                         f"validation split have an image from every method ({counts})")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(common), size=groups, replace=False), key=int)
    rows = []
    with atomic_dir(out) as tmp:
        for gi, ci in enumerate(chosen, start=1):
            gid, name = f"g{gi:04d}", common[int(ci)]
            _, mask, _ = ds[order[name]]
            mask_file = f"masks/{gid}.png"
            (tmp / "masks").mkdir(exist_ok=True)
            (tmp / mask_file).write_bytes(_png_bytes(mask_colours(ds, mask)))
            rows.append(dict(group=gid, role="mask", method="", file=mask_file,
                             sha256=sha256_file(tmp / mask_file), label_map=name, source=""))
            # a random slot per method: the file name tells nothing about the method
            slots = rng.permutation(len(methods)) + 1
            (tmp / "images" / gid).mkdir(parents=True)
            for method, slot in zip(methods, slots):
                src = per_method[method.label][name]
                rel = f"images/{gid}/{slot}{src.suffix.lower()}"
                shutil.copyfile(src, tmp / rel)
                rows.append(dict(group=gid, role="image", method=method.label, file=rel,
                                 sha256=sha256_file(tmp / rel), label_map=name, source=str(src)))
        with open(tmp / MANIFEST_FILE, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        meta = {
            "benchmark": bench.name,
            "seed": int(seed),
            "methods": [m.label for m in methods],
            "sources": {m.label: str(m.folder) for m in methods},
            "groups": len(chosen),
            "questions": dict(QUESTIONS),
            "ranks": "1 = best; AHR score = k + 1 - rank (k best, paper section 5.5)",
        }
        (tmp / STUDY_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        # atomic_dir makes a private temporary folder: the study is for whoever may serve it
        mode = 0o777 & ~_umask()
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(mode if p.is_dir() else mode & 0o666)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def build_study_from_args(benchmark: str, settings: Sequence[str], image_dirs: Sequence[str], work_dir: str,
                          groups: int, seed: int, out: str) -> Path:
    """The ``user-study build`` command: resolve the methods, then :func:`build_study`."""
    from ..config.benchmark import load_benchmark

    bench = load_benchmark(benchmark)
    return build_study(bench, parse_methods(settings, image_dirs, work_dir, bench), groups, seed, out)
