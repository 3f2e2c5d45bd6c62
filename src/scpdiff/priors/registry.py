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
workflow config's ``plugins:``) is all the workflow needs. A name already taken by another class
(a built-in or another plugin) is rejected, naming both classes.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from ..registry import Registry

# the built-in variants, each registered by its own module when that is first looked up
PRIORS: Registry[type] = Registry("prior variant", {
    "normal": "scpdiff.priors.normal",        # N(0, I), the baseline
    "spatial": "scpdiff.priors.spatial",      # Eq. 5
    "categorical": "scpdiff.priors.categorical",  # Eq. 7
    "joint": "scpdiff.priors.joint",          # Eq. 8, SCP-Diff
    "oracle": "scpdiff.priors.oracle",        # Eq. 4, the paired real latent
    # the official code's statistics (protocol knobs categorical_statistic, joint_fallback)
    "categorical_one_token": "scpdiff.priors.official_statistics",
    "joint_empty_to_spatial": "scpdiff.priors.official_statistics",
    # the authors' released statistics (scpdiff import-priors)
    "official_spatial": "scpdiff.priors.official",
    "official_categorical": "scpdiff.priors.official",
    "official_joint": "scpdiff.priors.official",
})
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make a :class:`~scpdiff.priors.base.NoisePrior` subclass available by ``name``."""

    def deco(cls: T) -> T:
        PRIORS.add(name, cls)
        cls.name = name  # what the prior file records, so load() finds the class again
        return cls

    return deco


def get_prior_class(name: str) -> type:
    return PRIORS.get(name)


def available() -> list[str]:
    return PRIORS.names()


def create(name: str, num_classes: int, latent_shape, **options):
    """Instantiate the prior variant ``name`` (unfitted)."""
    return get_prior_class(name)(num_classes, latent_shape, **options)
