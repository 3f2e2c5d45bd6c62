"""LPIPS (Zhang et al. 2018), the perceptual distance latent-diffusion autoencoders are trained with
(LDM's first-stage loss) and the diversity metric of the paper's Table 3 (:mod:`scpdiff.metrics.diversity`).

:func:`build_lpips` builds ``lpips.LPIPS(net="alex")`` v0.1 from a given AlexNet trunk (the file
``scpdiff weights`` prepares offline, :mod:`scpdiff.metrics.weights`) and the linear heads shipped
in the ``lpips`` wheel, strictly loaded; nothing here reads the cache.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError


def build_lpips(backbone_state: dict[str, torch.Tensor]):
    """``lpips.LPIPS(net="alex")`` with the given AlexNet trunk and the package's v0.1 heads, strictly."""
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecated `pretrained=False`
        model = lpips.LPIPS(pretrained=False, net="alex", version="0.1", pnet_rand=True, verbose=False)
    heads_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    # `lins.k` is the same module as `lin{k}`, listed twice in the state dict
    heads.update({f"lins.{k[3]}.{k.split('.', 1)[1]}": v for k, v in list(heads.items()) if k.startswith("lin")})
    state = {**{f"net.{k}": v for k, v in backbone_state.items()}, **heads}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # the scaling layer's shift/scale are constants set in its constructor, not in any file
    missing = [k for k in missing if not k.startswith("scaling_layer.")]
    if missing or unexpected:
        raise InputError(f"LPIPS weights do not fit lpips.LPIPS(net='alex'): missing {missing}, unexpected {unexpected}")
    return model.eval()
