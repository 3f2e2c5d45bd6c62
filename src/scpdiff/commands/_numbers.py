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


def int_at_least(minimum: int, why: str = ""):
    """An argparse type: a whole number >= ``minimum`` (``why`` explains the bound in the message)."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}{why}, got {text}")
        return value

    parse.__name__ = f"int >= {minimum}"  # how argparse names the type in its messages
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
at_least_two = int_at_least(2, " (a set of fewer has no spread)")


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


def open_fraction(text: str) -> float:
    """A fraction in (0, 1), e.g. an interval's coverage."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value
