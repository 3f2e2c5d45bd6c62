"""Argument types for numeric options: a value that makes no sense is refused by the parser
(exit 2, naming the option), never replaced by a default further down.

    p.add_argument("--batch-size", type=positive_int)       # 0 and negatives refused
    p.add_argument("--workers", type=non_negative_int)      # 0 is meaningful (decode in the main process)
    p.add_argument("--mu", type=unit_fraction)              # (0, 1]
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def at_least_two(text: str) -> int:
    value = _number(text, int)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 2 (a set of fewer has no spread), got {text}")
    return value


def unit_fraction(text: str) -> float:
    """A fraction of the T diffusion steps in (0, 1] (the paper's mu)."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
