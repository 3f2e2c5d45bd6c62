"""Class information of a benchmark's dataset without indexing its files.

Every reader module defines a module-level ``CLASSES`` (:class:`~scpdiff.datasets.base.ClassInfo`):
names and palette are data of the dataset, not of a particular copy on disk.
"""

from __future__ import annotations

import importlib

from . import _MODULES
from .base import ClassInfo


def class_info(kind: str) -> ClassInfo:
    from ..errors import ConfigError

    if kind not in _MODULES:
        raise ConfigError(f"unknown dataset kind {kind!r}; known: {sorted(_MODULES)}")
    module = importlib.import_module(_MODULES[kind])
    return module.CLASSES


def num_classes_for(bench) -> int:
    return class_info(bench["dataset"]["kind"]).num_classes
