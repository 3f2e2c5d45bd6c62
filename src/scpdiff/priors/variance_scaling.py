"""A fitted prior with its Gaussians' variances scaled (a prior "temperature" ablation).

Each group of moments a fitted prior stores (``X_count``, ``X_sum``, ``X_sumsq``: per position for
the spatial prior, per class for the categorical one, per class and cell for the joint one) keeps
its count and mean and gets ``factor`` times its population variance, by rewriting the sum of
squares: ``sumsq' = factor * sumsq + (1 - factor) * sum**2 / count``. The result is an ordinary
prior file of the same variant, so any stage that reads prior files uses it unchanged, e.g. a
workflow rule of the config's ``extra_rules`` (docs/workflow.md):

    prior = scale_variance(priors.load("spatial.safetensors"), 0.5)   # or: scpdiff scale-prior
    prior.save("shrunk_spatial.safetensors")

Fallbacks that pool several groups (the joint prior's class statistics for rare cells, the
categorical prior's pooled statistics for unseen classes) scale only their within-group part.
"""

from __future__ import annotations

import copy

import torch

from ..errors import InputError


def scale_variance(prior, factor: float):
    """A copy of the fitted ``prior`` whose every stored Gaussian has ``factor`` times its variance."""
    factor = float(factor)
    if not factor > 0 or not torch.isfinite(torch.tensor(factor)):
        raise InputError(f"the variance factor must be a positive number, got {factor}")
    if not prior.needs_fit or prior.num_images == 0:
        raise InputError(f"the {prior.name!r} prior has no fitted statistics to scale")
    stats = prior.state_tensors()
    groups = {k[: -len("_count")] for k in stats if k.endswith("_count")}
    other = set(stats) - {f"{g}_{part}" for g in groups for part in ("count", "sum", "sumsq")}
    if other:
        raise InputError(f"the {prior.name!r} prior stores statistics {sorted(other)} that are not count/sum/sumsq moments")
    scaled = copy.deepcopy(prior)
    for g in groups:
        count, total, total_sq = stats[f"{g}_count"], stats[f"{g}_sum"], stats[f"{g}_sumsq"]
        # the channel axis follows the group axis (spatial: a scalar count broadcasts)
        n = count.unsqueeze(1) if count.ndim else count
        between = torch.where(n > 0, total * total / n.clamp_min(1), torch.zeros_like(total))
        scaled._stats[f"{g}_sumsq"] = factor * total_sq + (1.0 - factor) * between
    return scaled


def scale_prior_file(path, factor: float, out) -> None:
    """Read the prior file ``path``, scale its variances by ``factor``, write it to ``out``."""
    from .file_format import load

    scale_variance(load(path), factor).save(out)
