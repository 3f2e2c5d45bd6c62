"""The metric networks, built from given weights and strictly loaded: nothing here reads the cache.

* :func:`build_inception` -- torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF
  ``inception-2015-12-05`` graph re-implemented in PyTorch), 2048-d pool features for FID/KID
  (paper section 5.1); :func:`inference_form` -- the same function with each batch norm folded
  into its convolution, in channels-last layout, as the metrics run it;
* :func:`build_lpips` -- ``lpips.LPIPS(net="alex")`` v0.1 for the diversity metric (paper Table 3),
  built in :mod:`scpdiff.models.perceptual` (the toy VAE's perceptual loss uses the same network).

:mod:`.weights` builds them to check the files it prepares; :mod:`.fid` and :mod:`.diversity`
build them from the prepared files. This module imports neither, so the two sides stay acyclic.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..models.perceptual import build_lpips  # noqa: F401 (this module is where the metrics take it from)

FEATURE_LAYER = "2048"  # torch-fidelity's name of the 2048-d average-pool features


def build_inception(state_dict: dict | None = None, weights_path: str | os.PathLike | None = None):
    """torch-fidelity's InceptionV3 (2048-d pool features) from a state dict or file, strictly loaded."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if (state_dict is None) == (weights_path is None):
        raise ValueError("give exactly one of state_dict, weights_path")
    if weights_path is not None:
        return FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(weights_path)).eval()
    # torch-fidelity only takes a path; passing None would make it download its own weights
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inception.pth"
        torch.save(state_dict, path)
        return FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(path)).eval()


def inference_form(inception):
    """``inception`` (eval mode) as scoring runs it: each ``BasicConv2d``'s batch norm folded into its
    convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``: the same affine map, one pass less
    over every activation) and the weights in channels-last layout, which oneDNN runs without
    reordering each call. Features agree with the module as built to float rounding (~2e-6
    relative; tests/test_metrics_fid.py); on one CPU thread it runs ~1.5x faster (16 toy images:
    3.3-3.6 s -> 2.2 s on a Zen 4 core)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if inception.training:
        raise ValueError("fold batch norms into an eval-mode network only")
    for block in inception.modules():
        if isinstance(getattr(block, "conv", None), torch.nn.Conv2d) and isinstance(getattr(block, "bn", None), torch.nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = torch.nn.Identity()
    return inception.to(memory_format=torch.channels_last)
