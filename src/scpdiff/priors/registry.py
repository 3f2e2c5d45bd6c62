"""The registry of prior variants by name (like lm-evaluation-harness's task registry).

A new variant is one class in one file::

    from scpdiff.priors import register
    from scpdiff.priors.joint import JointPrior

    @register("tempered_joint")
    class TemperedJointPrior(JointPrior):
        '''The joint prior (Eq. 8) with its variance scaled by ``tau``.'''
        def token_stats(self, labels):
            mean, var = super().token_stats(labels)
            return mean, 0.5 * var

Naming it in a benchmark's ``priors:`` list (and, outside the package, listing its module under the
workflow config's ``plugins:``) is all the workflow needs.
"""

from __future__ import annotations

import importlib
from typing import Callable, TypeVar

from ..errors import ConfigError

_PRIORS: dict[str, type] = {}
_BUILTIN_MODULES = ("normal", "spatial", "categorical", "joint", "oracle")
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a :class:`~scpdiff.priors.base.NoisePrior` subclass available by ``name``."""

    def deco(cls: T) -> T:
        existing = _PRIORS.get(name)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise ConfigError(f"a prior named {name!r} is already registered ({existing.__module__}.{existing.__qualname__})")
        cls.name = name
        _PRIORS[name] = cls
        return cls

    return deco


def _import_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(f"scpdiff.priors.{mod}")


def get_prior_class(name: str) -> type:
    _import_builtins()
    try:
        return _PRIORS[name]
    except KeyError:
        raise ConfigError(f"unknown prior variant {name!r}; registered: {available()}") from None


def available() -> list[str]:
    _import_builtins()
    return sorted(_PRIORS)


def create(name: str, num_classes: int, latent_shape, **options):
    """Instantiate the prior variant ``name`` (unfitted)."""
    return get_prior_class(name)(num_classes, latent_shape, **options)
