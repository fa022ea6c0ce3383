"""Loading GFPGAN's networks from `LIHQ_WEIGHTS_DIR`, never from the network.

Three upstream packages, three kinds of weights (registry entries in lihq.weights.registry):
- `gfpgan-1.3` / `gfpgan-1.4`: `GFPGANv1Clean` (gfpgan 1.3.8, `gfpgan/archs/gfpganv1_clean_arch.py`),
  built with exactly the arguments `GFPGANer` uses for `arch='clean'` (gfpgan/utils.py L40-50), its
  `params_ema` dict read by our strict loader (`lihq.weights.loaders`, weights-only unpickling),
  checked key by key and shape by shape against the module it loads into (a mismatch names the keys),
  then `load_state_dict(strict=True)`. No manifest or other file outside the weights dir is read.
- `facexlib`: RetinaFace-ResNet50 detector + ParseNet face parser, loaded by facexlib 0.3.0's own
  `FaceRestoreHelper` with GFPGANer's settings (face_size 512, crop_ratio (1, 1), retinaface_resnet50,
  use_parse). facexlib downloads a file it cannot find under `model_rootpath`; we always pass the
  weights dir as `model_rootpath` and check every file first, so a missing file is `WeightsMissing`
  naming `lihq weights fetch facexlib` and nothing is ever fetched at run time.
- `realesrgan-x2plus` (optional background upsampler): see services/gfpgan/upsampler.py.

`model_id` strings go into content-addressed cache keys: `<entry>=<weights_id>` (`synthetic:<seed>`
or `sha256:<hex>`), joined with `+`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lihq.errors import FailedPrecondition, InvalidInput
from lihq.weights import is_synthetic, require, weights_id
from lihq.weights.load import load_weights, strip_dataparallel
from services.gfpgan.compat import install as install_shim
from services.gfpgan.compat import upstream

log = logging.getLogger("lihq.gfpgan")

FACE_SIZE = 512  # GFPGANer aligns every face to 512x512 (face_size=512)
VERSIONS: dict[str, str] = {"1.3": "gfpgan-1.3", "1.4": "gfpgan-1.4"}
FACEXLIB = "facexlib"
# GFPGANer's constructor arguments for arch='clean' (v1.3 and v1.4 share them).
CLEAN_ARCH: dict[str, Any] = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}
# facexlib names the files after its download URLs' basenames; model_rootpath must hold exactly these.
_FACEXLIB_FILES = ("detection_Resnet50_Final.pth", "parsing_parsenet.pth")


def check_version(version: str) -> str:
    """'1.3' | '1.4' (empty -> '1.4'); InvalidInput otherwise."""
    v = version or "1.4"
    if v not in VERSIONS:
        raise InvalidInput(f"GFPGAN version {version!r}: expected one of {', '.join(VERSIONS)}")
    return v


def build_restorer(**overrides: Any) -> nn.Module:
    """An untrained GFPGANv1Clean with GFPGANer's arguments (`overrides` only for tiny test nets)."""
    return upstream().GFPGANv1Clean(**{**CLEAN_ARCH, **overrides})


def build_detector() -> nn.Module:
    """facexlib's RetinaFace-ResNet50 as `init_detection_model('retinaface_resnet50')` builds it."""
    install_shim()
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision: resnet50(pretrained=False) is deprecated
        return RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))


def build_parser() -> nn.Module:
    """facexlib's ParseNet as `init_parsing_model('parsenet')` builds it."""
    install_shim()
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(in_size=512, out_size=512, parsing_ch=19)


def load_restorer(path: Path, device: torch.device) -> nn.Module:
    """GFPGANv1Clean in eval mode on `device`, from an official-layout `params_ema` checkpoint.

    Raises WeightsMissing (absent), CorruptCheckpoint (unreadable), WrongCheckpoint (keys or shapes
    differ from the GFPGANv1Clean GFPGANer builds; the message names them).
    """
    what = f"{path} (as GFPGANv1Clean)"
    net = load_weights(build_restorer(), path, key="params_ema", filter_fn=strip_dataparallel, what=what)
    return net.eval().to(device)


def load_face_helper(weights_dir: Path, device: torch.device, upscale: float = 2) -> Any:
    """facexlib's FaceRestoreHelper exactly as GFPGANer builds it, its weights from `weights_dir`.

    The helper owns the detector (`face_det`), the parser (`face_parse`) and the FFHQ 5-point
    template (`face_template`). WeightsMissing names `lihq weights fetch facexlib`.
    """
    paths = require(FACEXLIB, weights_dir)
    assert isinstance(paths, list)
    root = paths[0].parent
    names = tuple(p.name for p in paths)
    if names != _FACEXLIB_FILES or any(p.parent != root for p in paths):
        raise FailedPrecondition(
            f"facexlib expects {_FACEXLIB_FILES} side by side in one directory; the registry gives {paths}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision: resnet50(pretrained=False) is deprecated
        return upstream().FaceRestoreHelper(
            upscale,
            face_size=FACE_SIZE,
            crop_ratio=(1, 1),
            det_model="retinaface_resnet50",
            save_ext="png",
            use_parse=True,
            device=device,
            model_rootpath=str(root),
        )


@dataclass
class FaceModels:
    """Everything one restore needs, loaded once. Tests may swap nets (tiny ones, a stub detector).

    `helper`: facexlib FaceRestoreHelper (detector `helper.face_det`, parser `helper.face_parse`,
    template `helper.face_template` (5, 2) float64 in 512x512 crop pixels).
    `restorers`: version -> GFPGANv1Clean. `ids`: registry entry -> weights id.
    """

    helper: Any
    device: torch.device
    restorers: dict[str, nn.Module] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    background: Any = None  # services.gfpgan.upsampler.BackgroundUpsampler, loaded on demand

    @property
    def detector(self) -> Any:
        return self.helper.face_det

    @property
    def parser(self) -> nn.Module:
        return self.helper.face_parse

    @property
    def template(self) -> np.ndarray:
        return np.asarray(self.helper.face_template, dtype=np.float64)

    def model_id(self, version: str, background: bool) -> str:
        names = [VERSIONS[version], FACEXLIB] + (["realesrgan-x2plus"] if background else [])
        return "+".join(f"{n}={self.ids.get(n, 'unknown')}" for n in names)

    def synthetic(self) -> list[str]:
        return sorted(n for n, i in self.ids.items() if i.startswith("synthetic:"))


def facexlib_id(weights_dir: Path) -> str:
    """One id for the two facexlib files (the detector's and the parser's ids, joined by ',')."""
    paths = require(FACEXLIB, weights_dir)
    assert isinstance(paths, list)
    ids = [weights_id(p) for p in paths]
    return ids[0] if len(set(ids)) == 1 else ",".join(ids)


def load_face_models(weights_dir: Path, device: torch.device) -> FaceModels:
    """The facexlib helper (detector + parser); restorers and the upsampler are added on demand."""
    helper = load_face_helper(weights_dir, device)
    models = FaceModels(helper=helper, device=device, ids={FACEXLIB: facexlib_id(weights_dir)})
    _warn_synthetic(require(FACEXLIB, weights_dir))
    return models


def add_restorer(models: FaceModels, weights_dir: Path, version: str) -> nn.Module:
    """Load (once) the GFPGAN net of `version` into `models`; WeightsMissing names its fetch command."""
    version = check_version(version)
    if version not in models.restorers:
        path = require(VERSIONS[version], weights_dir)
        assert isinstance(path, Path)
        _warn_synthetic([path])
        models.restorers[version] = load_restorer(path, models.device)
        models.ids[VERSIONS[version]] = weights_id(path)
    return models.restorers[version]


def _warn_synthetic(paths: Any) -> None:
    for p in paths if isinstance(paths, list) else [paths]:
        info = is_synthetic(p)
        if info is not None:
            log.warning(
                "SYNTHETIC weights loaded from %s (seed %s): outputs are not real faces", p, info["seed"]
            )
