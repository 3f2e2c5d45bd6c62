"""Checking image and label-map files before any network is loaded, in DataLoader workers.

Every command that reads a folder of images or label maps given by the user (``score``'s
``--images`` and ``--masks``) runs these checks on every file first, so a truncated PNG, a 16-bit
or transparent image, a wrong size or a label outside the class range fails in seconds with the
file named, not after the models have loaded or most batches have been scored. The checks decode
each file completely by the same rules the readers use (:func:`.folders.read_rgb`,
:func:`.folders.read_label_map`), in ``workers`` processes.

    run_file_checks([FileCheck.image(p, (512, 1024)) for p in paths], workers=8, what="--images")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from .folders import check_label_range, read_label_map, read_rgb

MAX_LISTED = 5  # problems listed in one message; the count says how many more


@dataclass(frozen=True)
class FileCheck:
    """One file to check: an image of ``size`` (H, W), or a label map of ``size`` with ids in range."""

    path: Path
    kind: str  # "image" | "labels"
    size: tuple[int, int] | None = None
    num_classes: int | None = None
    ignore_index: int = 255
    size_note: str = ""

    @classmethod
    def image(cls, path, size=None, size_note: str = "") -> "FileCheck":
        return cls(Path(path), "image", size and tuple(size), size_note=size_note)

    @classmethod
    def labels(cls, path, size=None, num_classes=None, ignore_index=255, size_note: str = "") -> "FileCheck":
        return cls(Path(path), "labels", size and tuple(size), num_classes, ignore_index, size_note)

    def run(self) -> None:
        """Raise :class:`InputError` naming the file if it fails; return nothing if it passes."""
        if self.kind == "image":
            shape = read_rgb(self.path).size[::-1]
        else:
            stored = read_label_map(self.path)
            shape = stored.shape
        if self.size is not None and tuple(shape) != tuple(self.size):
            what = "image" if self.kind == "image" else "label map"
            raise InputError(f"{self.path}: {what} is {shape[0]}x{shape[1]} (HxW), expected "
                             f"{self.size[0]}x{self.size[1]}{self.size_note}")
        if self.kind == "labels" and self.num_classes is not None:
            check_label_range(stored, self.num_classes, self.ignore_index, str(self.path))


class _Checks:
    """A map-style dataset whose items are the error messages of the checks ('' when a file passes)."""

    def __init__(self, checks: Sequence[FileCheck]):
        self.checks = list(checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, i: int) -> str:
        try:
            self.checks[i].run()
        except InputError as exc:
            return str(exc)
        return ""


def _as_list(batch):
    return batch


def run_file_checks(checks: Sequence[FileCheck], workers: int = 0, what: str = "input files") -> None:
    """Run every check (in ``workers`` DataLoader processes); one :class:`InputError` lists the failures."""
    from torch.utils.data import DataLoader

    if not checks:
        return
    loader = DataLoader(_Checks(checks), batch_size=16, num_workers=max(0, int(workers)), collate_fn=_as_list)
    problems = [msg for batch in loader for msg in batch if msg]
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        head = f"{what}: {len(problems)} of {len(checks)} file(s) failed the input checks"
        if len(problems) == 1:
            raise InputError(problems[0])
        raise InputError(head + ":\n  " + "\n  ".join(problems[:MAX_LISTED]) + more)
