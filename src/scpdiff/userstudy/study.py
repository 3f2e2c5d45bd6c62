"""The study folder and what a participant sees of it.

A study folder (written by :func:`scpdiff.userstudy.build.build_study`) holds::

    study.json        benchmark, seed, methods (in table order), questions, groups
    manifest.csv      group, role (mask | image), method, file, sha256, label_map, source
    masks/gNNNN.png   the colour-coded label mask of each group
    images/gNNNN/I.*  one image per method; I is a random slot, so a file name says nothing
                      about its method
    answers.sqlite    the answers (:mod:`.store`), created by ``invite`` or ``serve``

The page never sees ``manifest.csv``: only the masks and images listed in it are served, and an
image is named by its path alone. Each participant gets a fixed random order of the groups and,
within each group, of the images, drawn from (study seed, participant id): reopening the link shows
the same order, and resumes at the first group not yet answered.

Ranks follow the participant's reading of a ranking: 1 is the best of the k images. The paper's
Average Human Ranking scores the best image k (section 5.5: "1 to 3, with 3 being the best"), so
the AHR score of an answer is ``k + 1 - rank`` (:mod:`.results`).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

STUDY_FILE = "study.json"
MANIFEST_FILE = "manifest.csv"
DATABASE_FILE = "answers.sqlite"
MANIFEST_COLUMNS = ("group", "role", "method", "file", "sha256", "label_map", "source")
# (key, the question put to the participant: the paper's wording, section 5.5)
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("quality", "the quality of displayed images"),
    ("fidelity", "the fidelity to the given label mask"),
)
QUESTION_KEYS = tuple(q for q, _ in QUESTIONS)


class AnswerError(ValueError):
    """A request the study cannot accept; ``status`` is the HTTP status it is answered with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Group:
    id: str  # "g0001"
    label_map: str  # the label map's name in the benchmark's validation split
    mask: str  # path of the colour mask, relative to the study folder
    images: dict[str, str]  # image path (relative) -> method


@dataclass
class Study:
    root: Path
    benchmark: str
    seed: int
    methods: list[str]  # table order
    groups: dict[str, Group] = field(default_factory=dict)  # in build order
    study_id: str = ""  # sha256 of manifest.csv: an answers database belongs to one manifest

    @property
    def k(self) -> int:
        return len(self.methods)

    @property
    def database(self) -> Path:
        return self.root / DATABASE_FILE

    def served_files(self) -> set[str]:
        files = {g.mask for g in self.groups.values()}
        for g in self.groups.values():
            files.update(g.images)
        return files

    def participant_order(self, participant_id: int) -> list[tuple[str, list[str]]]:
        """(group, images in display order) for every group, in this participant's order."""
        rng = np.random.default_rng([int(self.seed), int(participant_id)])
        ids = list(self.groups)
        out = []
        for gi in rng.permutation(len(ids)):
            group = self.groups[ids[gi]]
            images = sorted(group.images)
            out.append((group.id, [images[i] for i in rng.permutation(len(images))]))
        return out

    def resolve_file(self, relpath: str) -> Path:
        """The file a page may load: inside the study folder (else 400) and listed (else 404)."""
        root = self.root.resolve()
        target = (root / relpath).resolve()
        if not target.is_relative_to(root):
            raise AnswerError(400, f"file path {relpath!r} is outside the study")
        rel = target.relative_to(root).as_posix()
        if rel not in self.served_files():
            raise AnswerError(404, f"{relpath!r} is not an image of this study")
        return target

    def check_answer(self, payload) -> tuple[str, dict[str, dict[str, int]]]:
        """Validate ``{"group": G, "ranks": {question: {image: rank}}}``: every question, every
        image of the group once, ranks 1..k each used once. Returns (group, ranks)."""
        if not isinstance(payload, dict):
            raise AnswerError(400, "the answer must be a JSON object {\"group\": ..., \"ranks\": ...}")
        group_id = payload.get("group")
        if not isinstance(group_id, str) or group_id not in self.groups:
            raise AnswerError(404, f"unknown group {group_id!r}")
        group = self.groups[group_id]
        ranks = payload.get("ranks")
        if not isinstance(ranks, dict) or set(ranks) != set(QUESTION_KEYS):
            got = sorted(ranks) if isinstance(ranks, dict) else type(ranks).__name__
            raise AnswerError(400, f"ranks must answer exactly the questions {list(QUESTION_KEYS)}; got {got}")
        clean: dict[str, dict[str, int]] = {}
        for question in QUESTION_KEYS:
            given = ranks[question]
            if not isinstance(given, dict) or set(given) != set(group.images):
                got = sorted(given) if isinstance(given, dict) else type(given).__name__
                raise AnswerError(400, f"{question}: rank exactly the images of {group_id} "
                                       f"{sorted(group.images)}; got {got}")
            for image, rank in given.items():
                if isinstance(rank, bool) or not isinstance(rank, int):
                    raise AnswerError(400, f"{question}: the rank of {image} must be an integer, got {rank!r}")
                if not 1 <= rank <= self.k:
                    raise AnswerError(400, f"{question}: rank {rank} of {image} is out of range 1..{self.k}")
            values = sorted(given.values())
            if values != list(range(1, self.k + 1)):
                repeated = sorted({r for r in values if values.count(r) > 1})
                raise AnswerError(400, f"{question}: each rank 1..{self.k} is used once; "
                                       f"rank(s) {repeated} repeated")
            clean[question] = {image: int(rank) for image, rank in given.items()}
        return group_id, clean


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the study manifest ({exc.strerror})") from None
    if not rows or tuple(rows[0]) != MANIFEST_COLUMNS:
        raise InputError(f"{path}: not a study manifest (columns {', '.join(MANIFEST_COLUMNS)})")
    return rows


def load_study(folder: str | os.PathLike) -> Study:
    """Read a study folder; every listed file must exist."""
    from ..utils.hashing import sha256_file

    root = Path(folder)
    meta_path = root / STUDY_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{root}: not a study folder (no {STUDY_FILE}; make one with scpdiff user-study build)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: cannot read ({exc})") from None
    rows = read_manifest(root / MANIFEST_FILE)
    study = Study(root=root, benchmark=meta["benchmark"], seed=int(meta["seed"]), methods=list(meta["methods"]),
                  study_id=sha256_file(root / MANIFEST_FILE))
    masks: dict[str, tuple[str, str]] = {}
    images: dict[str, dict[str, str]] = {}
    for row in rows:
        if not (root / row["file"]).is_file():
            raise InputError(f"{root / MANIFEST_FILE}: {row['file']} is missing from the study folder")
        if row["role"] == "mask":
            masks[row["group"]] = (row["file"], row["label_map"])
        else:
            images.setdefault(row["group"], {})[row["file"]] = row["method"]
    for gid, (mask, name) in masks.items():
        group_images = images.get(gid, {})
        if sorted(group_images.values()) != sorted(study.methods):
            raise InputError(f"{root / MANIFEST_FILE}: group {gid} must hold one image per method {study.methods}")
        study.groups[gid] = Group(id=gid, label_map=name, mask=mask, images=group_images)
    if not study.groups:
        raise InputError(f"{root / MANIFEST_FILE}: no groups")
    return study
