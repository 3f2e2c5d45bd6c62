"""Optional extra: the protocol segmenters inside mmsegmentation, plus mmseg's stock UPerNet-R101.

    pip install 'scpdiff[mmseg]'   # mmsegmentation 1.2.2, mmengine 0.10.7, mmcv-lite 2.1.0, ftfy, regex

Importing this module imports mmseg and registers in its ``MODELS`` registry:

* ``OASISDRNSegmentor``, ``OASISUPerNetSegmentor``, ``OASISDeepLabV2Segmentor``: our plain torch
  networks (:mod:`.drn`, :mod:`.upernet`, :mod:`.deeplabv2`) with their published test recipes,
  as mmseg segmentors, so mmseg's runner, pipelines and ``IoUMetric`` can evaluate them
  (configs in ``segmenters/mmseg/``). They load the published files with our strict loader
  (``checkpoint=...`` in the config), not with mmengine's ``load_from``, whose ``torch.load`` no
  longer reads these pickles on torch >= 2.6 and whose key prefixes would not match.
  Predictions come back at the size of the image the pipeline produced (``img_shape``), not
  resized to ``ori_shape``: the OASIS convention is to downsample the labels (nearest) to the
  scoring size, so the configs load annotations *before* resizing.
* ``ProtocolResize``, a pipeline transform (mmseg ``TRANSFORMS``) that resizes images exactly
  as the plain-torch route does (Pillow BICUBIC, :func:`.pil_resize.resize_uint8_like_pil`) and
  label maps with Pillow NEAREST; the protocol configs use it instead of mmcv's ``Resize``
  (OpenCV bilinear), so the two routes see the same pixels.
* :func:`load_through_mmseg`, the ``mmseg`` backend of ``load_segmenter`` (``scpdiff score
  --segmenter-backend mmseg``): the protocol segmentor built from its config in
  ``segmenters/mmseg/`` and run through mmseg's ``test_step`` (data preprocessor, segmentor,
  ``SegDataSample`` post-processing).
* The stock mmseg ResNet-101-V1c UPerNet (``segmenters/mmseg/upernet_r101_ade20k_stock.py``) is
  a non-protocol option: not the network OASIS used, numbers are not comparable to the paper's.
  It is available to ``scpdiff score`` as segmenter kind ``mmseg_upernet_r101``.

mmcv-lite has no compiled ``mmcv.ops``, which mmseg imports at module level (``point_sample``,
``sigmoid_focal_loss``); :func:`install_mmcv_ops_standin` provides pure-torch versions of those
two before mmseg is imported (the real ops are used when a full mmcv is installed). The core
package never imports this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from ..utils.torch_state import full_float32
from . import BACKEND_LOADERS, register_segmenter
from .protocol import (
    ProtocolSegmenter,
    check_images,
    load_strict,
    load_trusted_checkpoint,
    resolve_checkpoint,
)

CONFIG_DIR = Path(__file__).resolve().parents[3] / "segmenters" / "mmseg"
STOCK_UPERNET_CONFIG = "upernet_r101_ade20k_stock.py"


# ------------------------------------------------------------------- pure-torch mmcv.ops


def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs) -> torch.Tensor:
    """Sample ``input`` [N, C, H, W] at ``points`` [N, P, 2] (or [N, Hp, Wp, 2]) given in 0..1 (x, y).

    Same contract as ``mmcv.ops.point_sample``: bilinear ``grid_sample`` after mapping 0..1 to
    -1..1; a [N, P, 2] query returns [N, C, P].
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    out = F.grid_sample(input, points * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if add_dim else out


def sigmoid_focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """``mmcv.ops.sigmoid_focal_loss``: logits [N, C], class-index targets [N] (index C = none)."""
    p = input.sigmoid()
    onehot = F.one_hot(target.long(), num_classes=input.shape[1] + 1)[:, : input.shape[1]].to(input)
    pos = -alpha * (1 - p).pow(gamma) * F.logsigmoid(input)
    neg = -(1 - alpha) * p.pow(gamma) * F.logsigmoid(-input)
    loss = onehot * pos + (1 - onehot) * neg
    if weight is not None:
        loss = loss * weight.view(-1, 1)
    if reduction == "mean":
        return loss.sum() / input.shape[0]
    if reduction == "sum":
        return loss.sum()
    return loss


def _missing_op(name: str):
    # mmseg guards its optional ops with ``except ModuleNotFoundError`` (CCHead, PSAHead, ...)
    if name.startswith("__"):
        raise AttributeError(name)
    raise ModuleNotFoundError(f"mmcv.ops.{name} needs the compiled mmcv (only a pure-torch stand-in is installed)")


def install_mmcv_ops_standin() -> bool:
    """Provide ``mmcv.ops`` with the two ops mmseg imports, unless the compiled ops exist.

    Returns True when the stand-in was installed (now or before).
    """
    current = sys.modules.get("mmcv.ops")
    if current is not None:
        return getattr(current, "__scpdiff_standin__", False)
    import mmcv

    if importlib.util.find_spec("mmcv._ext") is not None:
        return False
    ops = types.ModuleType("mmcv.ops")
    ops.__doc__ = "scpdiff's pure-torch stand-in for the few mmcv.ops that mmseg imports (mmcv-lite)."
    ops.__scpdiff_standin__ = True
    ops.point_sample = point_sample
    ops.sigmoid_focal_loss = sigmoid_focal_loss
    ops.__getattr__ = _missing_op
    sys.modules["mmcv.ops"] = ops
    mmcv.ops = ops
    return True


def import_mmseg():
    """Import mmseg (with the ops stand-in when needed); a clear error when it is not installed."""
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the mmseg extra is not installed ({exc}); pip install 'scpdiff[mmseg]' "
            "(mmsegmentation==1.2.2 mmengine==0.10.7 mmcv-lite==2.1.0 ftfy regex)"
        ) from exc
    install_mmcv_ops_standin()
    try:
        import mmseg
        import mmseg.models  # noqa: F401  (fills the registry with mmseg's own modules)
    except ImportError as exc:
        raise ConfigError(f"mmsegmentation cannot be imported: {exc}; pip install 'scpdiff[mmseg]'") from exc
    return mmseg


import_mmseg()

from mmengine.structures import PixelData  # noqa: E402
from mmseg.models.segmentors.base import BaseSegmentor  # noqa: E402
from mmcv.transforms import BaseTransform  # noqa: E402
from mmseg.registry import MODELS, TRANSFORMS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from . import deeplabv2, drn, upernet  # noqa: E402
from .pil_resize import resize_uint8_like_pil  # noqa: E402


class _ProtocolSegmentor(BaseSegmentor):
    """An mmseg segmentor around one of our protocol networks and its test recipe.

    Configure the data preprocessor with ``mean=[0, 0, 0], std=[1, 1, 1], bgr_to_rgb=True``:
    the recipe wants RGB 0..255 pixels and does its own normalisation.
    """

    build_network = staticmethod(lambda: None)
    recipe_class: type[ProtocolSegmenter] = ProtocolSegmenter

    def __init__(self, checkpoint: str | None = None, data_preprocessor=None, init_cfg=None, **recipe_kwargs):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = self.build_network()
        self.recipe_kwargs = dict(recipe_kwargs)
        self.recipe_kwargs.setdefault("input_size", None)  # the pipeline sets the scoring size
        self.align_corners = False
        if checkpoint is not None:
            self.load_published(checkpoint)

    def load_published(self, checkpoint: str | os.PathLike) -> None:
        """Strictly load the published file(s) (``checkpoint``: the file, or the folder of files)."""
        raise NotImplementedError

    def recipe(self, device: torch.device) -> ProtocolSegmenter:
        return self.recipe_class(self.net, device=device, **self.recipe_kwargs)

    def extract_feat(self, inputs: torch.Tensor):
        raise NotImplementedError(f"{type(self).__name__} is an evaluation-only wrapper")

    def loss(self, inputs, data_samples):
        raise NotImplementedError(f"{type(self).__name__} is an evaluation-only wrapper (no training)")

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas=None) -> torch.Tensor:
        """RGB 0..255 float [B, 3, H, W] -> the recipe's class scores at the input size."""
        images = inputs.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        seg = self.recipe(inputs.device)
        with full_float32():
            return seg.score_maps(seg.prepare(images))

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        return self.encode_decode(inputs)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples=None):
        scores = self.encode_decode(inputs)
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(scores.shape[0])]
        h, w = scores.shape[-2:]
        for i, sample in enumerate(data_samples):
            left, right, top, bottom = sample.metainfo.get("padding_size", [0, 0, 0, 0])
            s = scores[i, :, top : h - bottom, left : w - right]
            sample.set_data({"seg_logits": PixelData(data=s), "pred_sem_seg": PixelData(data=s.argmax(0, keepdim=True))})
        return data_samples


@MODELS.register_module()
class OASISDRNSegmentor(_ProtocolSegmentor):
    """fyu/drn DRN-D-105 Cityscapes, multi-scale (OASIS protocol for Cityscapes)."""

    build_network = staticmethod(drn.DRNSeg)
    recipe_class = drn.DRNSegmenter

    def load_published(self, checkpoint):
        path = resolve_checkpoint(checkpoint, drn.PUBLISHED, drn.DRNSegmenter.name)
        load_strict(self.net, load_trusted_checkpoint(path), path)


@MODELS.register_module()
class OASISUPerNetSegmentor(_ProtocolSegmentor):
    """CSAIL ade20k-resnet101-upernet, five test scales (OASIS protocol for ADE20K)."""

    build_network = staticmethod(upernet.CSAILUPerNet)
    recipe_class = upernet.UPerNetSegmenter

    def load_published(self, checkpoint):
        encoder_path, decoder_path = upernet.resolve_checkpoints(checkpoint)
        load_strict(self.net.encoder, load_trusted_checkpoint(encoder_path), encoder_path)
        load_strict(self.net.decoder, load_trusted_checkpoint(decoder_path), decoder_path)


@MODELS.register_module()
class OASISDeepLabV2Segmentor(_ProtocolSegmentor):
    """kazuto1011 DeepLab v2 ResNet-101 MSC COCO-Stuff 164k (OASIS protocol for COCO-Stuff)."""

    build_network = staticmethod(lambda: deeplabv2.MSC(deeplabv2.DeepLabV2()))
    recipe_class = deeplabv2.DeepLabV2Segmenter

    def load_published(self, checkpoint):
        path = resolve_checkpoint(checkpoint, deeplabv2.PUBLISHED, deeplabv2.DeepLabV2Segmenter.name)
        load_strict(self.net, load_trusted_checkpoint(path), path)


REGISTERED = ("OASISDRNSegmentor", "OASISUPerNetSegmentor", "OASISDeepLabV2Segmentor")


@TRANSFORMS.register_module()
class ProtocolResize(BaseTransform):
    """Resize ``img`` (Pillow BICUBIC, bit-exact) and ``gt_seg_map`` (Pillow NEAREST) to ``scale``.

    ``scale`` is (w, h) as in mmcv's ``Resize(keep_ratio=False)``. The image is resized as the
    plain-torch route's ``ProtocolSegmenter.prepare`` resizes (same function), so both routes
    score the same pixels; mmcv's ``Resize`` (OpenCV bilinear) would not.
    """

    def __init__(self, scale: Sequence[int]):
        super().__init__()
        self.scale = (int(scale[0]), int(scale[1]))

    def transform(self, results: dict) -> dict:
        from PIL import Image

        w, h = self.scale
        img = results["img"]
        if img.shape[:2] != (h, w):
            x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
            img = resize_uint8_like_pil(x, (h, w), "bicubic").permute(1, 2, 0).numpy()
        results["img"] = img
        results["img_shape"] = (h, w)
        results["scale_factor"] = (w / results["ori_shape"][1], h / results["ori_shape"][0])
        if results.get("gt_seg_map") is not None and results["gt_seg_map"].shape[:2] != (h, w):
            results["gt_seg_map"] = np.asarray(Image.fromarray(results["gt_seg_map"]).resize((w, h), Image.NEAREST))
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"


PROTOCOL_CONFIGS = {
    "drn_d_105": "drn_d_105_cityscapes_oasis.py",
    "upernet_101": "upernet_101_ade20k_oasis.py",
    "deeplabv2": "deeplabv2_cocostuff164k_oasis.py",
}


class MMSegProtocolSegmenter:
    """A protocol segmentor run through mmseg's ``test_step``, behind scpdiff's segmenter interface.

    Images are resized to ``input_size`` (when set) exactly as the plain-torch route does, then
    given to mmseg as its loading transform gives them (BGR ``[3, H, W]`` uint8) with their
    ``SegDataSample``; the data preprocessor converts to RGB float, the segmentor runs the recipe,
    and the labels are ``pred_sem_seg`` of mmseg's post-processing.
    """

    backend = "mmseg"

    def __init__(self, model, name: str, input_size: Sequence[int] | None):
        self.model = model
        self.name = name
        self.num_classes = model.recipe_class.num_classes
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))

    @property
    def label_size(self) -> tuple[int, int] | None:
        return self.input_size

    @property
    def options(self) -> dict:
        return self.model.recipe(torch.device("cpu")).options

    def output_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        return self.input_size if self.input_size is not None else (int(image_size[0]), int(image_size[1]))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB ``[B, H, W, 3]`` -> int64 ``[B, h, w]`` train ids at :meth:`output_size`."""
        check_images(images)
        x = images.permute(0, 3, 1, 2)
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = resize_uint8_like_pil(x, self.input_size, "bicubic")
        h, w = x.shape[-2:]
        samples = [SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w))) for _ in range(x.shape[0])]
        data = {"inputs": [img.flip(0).contiguous() for img in x], "data_samples": samples}  # BGR, as loaded
        with full_float32():
            outputs = self.model.test_step(data)
        labels = torch.stack([out.pred_sem_seg.data[0] for out in outputs])
        return labels.to(device=images.device, dtype=torch.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, backend='mmseg', label_size={self.label_size})"


@BACKEND_LOADERS.register("mmseg")
def load_through_mmseg(kind: str, checkpoint=None, device: str = "cpu", **recipe_kwargs) -> MMSegProtocolSegmenter:
    """The ``mmseg`` backend of :func:`scpdiff.segmenters.load_segmenter` for a protocol segmenter.

    ``recipe_kwargs`` are the plain-torch recipe's options (``scales``, ``img_sizes``,
    ``normalization``, ``input_size``); the same defaults apply, so both routes score the same way.
    """
    if kind not in PROTOCOL_CONFIGS:
        raise ConfigError(
            f"segmenter {kind!r} has no mmseg route (backend 'mmseg' serves {', '.join(PROTOCOL_CONFIGS)})"
        )
    recipe_class = {"drn_d_105": drn.DRNSegmenter, "upernet_101": upernet.UPerNetSegmenter,
                    "deeplabv2": deeplabv2.DeepLabV2Segmenter}[kind]
    input_size = recipe_kwargs.pop("input_size", _default_input_size(recipe_class))
    # resolved here so that a missing file is the same clear error as on the plain-torch route
    if kind == "upernet_101":
        checkpoint = upernet.resolve_checkpoints(checkpoint)[0].parent
    else:
        published = drn.PUBLISHED if kind == "drn_d_105" else deeplabv2.PUBLISHED
        checkpoint = resolve_checkpoint(checkpoint, published, kind)
    model = build_from_config(config_path(PROTOCOL_CONFIGS[kind]), checkpoint, device=device, model_overrides=recipe_kwargs)
    return MMSegProtocolSegmenter(model, kind, input_size)


def _default_input_size(recipe_class) -> tuple[int, int] | None:
    import inspect

    return inspect.signature(recipe_class.__init__).parameters["input_size"].default


# ------------------------------------------------------------ configs and the stock model


def config_path(name: str) -> Path:
    """A config of ``segmenters/mmseg/`` by file name."""
    path = CONFIG_DIR / name
    if not path.is_file():
        raise ConfigError(f"no mmseg config {path}")
    return path


def build_from_config(
    config: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    device: str = "cpu",
    model_overrides: dict | None = None,
):
    """Build the model of an mmseg config, with its weights loaded by our trusted strict loader.

    ``checkpoint``: the published file(s) of a protocol segmentor (replacing the config's
    ``model.checkpoint``), or an mmseg checkpoint of a stock model. ``model_overrides`` replace
    keys of ``cfg.model`` (tests use ``{"checkpoint": None}`` for random weights).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.get("default_scope", "mmseg"))
    model_cfg = cfg.model
    protocol = model_cfg["type"] in REGISTERED
    if protocol and checkpoint is not None:
        model_cfg["checkpoint"] = str(checkpoint)
    model_cfg.update(model_overrides or {})
    model = MODELS.build(model_cfg)
    if checkpoint is not None and not protocol:
        if not Path(checkpoint).is_file():
            raise InputError(f"checkpoint {checkpoint} does not exist (config {config}: see its checkpoint_url)")
        load_strict(model, load_trusted_checkpoint(checkpoint), checkpoint)
    return model.to(device).eval()


class MMSegSegmenter:
    """An mmseg ``EncoderDecoder`` behind scpdiff's segmenter interface (labels at the image size)."""

    def __init__(self, model, name: str, num_classes: int):
        self.model = model
        self.name = name
        self.num_classes = num_classes
        self.label_size = None

    def output_size(self, image_size: Sequence[int]) -> tuple[int, int]:
        return int(image_size[0]), int(image_size[1])

    @torch.inference_mode()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        device = next(self.model.parameters()).device
        batch = {"inputs": list(images.to(device).permute(0, 3, 1, 2).flip(1))}  # as loaded: BGR
        data = self.model.data_preprocessor(batch, False)
        h, w = images.shape[1:3]
        metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=tuple(data["inputs"].shape[-2:]))] * images.shape[0]
        with full_float32():
            logits = self.model.inference(data["inputs"], metas)[..., :h, :w]
        return logits.argmax(1).to(device=images.device, dtype=torch.int64)


@register_segmenter("mmseg_upernet_r101")
def load_mmseg_upernet_r101(checkpoint=None, device="cpu", **kwargs) -> MMSegSegmenter:
    """The stock mmseg UPerNet-R101 ADE20K (non-protocol; checkpoint from the mmseg model zoo)."""
    if checkpoint is None:
        raise ConfigError(
            "segmenter 'mmseg_upernet_r101' needs the mmseg model-zoo checkpoint named in "
            f"{config_path(STOCK_UPERNET_CONFIG)} (checkpoint_url)"
        )
    model = build_from_config(config_path(STOCK_UPERNET_CONFIG), checkpoint, device=device, model_overrides=kwargs)
    return MMSegSegmenter(model, "mmseg_upernet_r101", 150)
