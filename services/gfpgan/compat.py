"""Import shim that lets basicsr 1.4.2 (and so gfpgan 1.3.8) import under torchvision >= 0.17.

Why it exists
-------------
basicsr 1.4.2, the last release on PyPI, does
``from torchvision.transforms.functional_tensor import rgb_to_grayscale`` at import time
(``basicsr/data/degradations.py``, reached from ``import basicsr`` through ``basicsr.data``).
torchvision deprecated that private module in 0.15 and removed it in 0.17; we pin torchvision 0.26,
so ``import basicsr`` -- and therefore ``import gfpgan`` -- fails with ModuleNotFoundError.
The function itself still exists, publicly, as ``torchvision.transforms.functional.rgb_to_grayscale``
(same signature: ``(img: Tensor, num_output_channels: int = 1) -> Tensor``), and basicsr only uses it
for training-time degradations, never on the inference path we run.

`install()` registers a tiny stand-in module under the old name in ``sys.modules`` (only when the real
one is absent), exposing that one function. It changes nothing else in torchvision and is idempotent.
Every module of ours that imports basicsr / gfpgan / facexlib goes through `upstream()` below, so the
shim is always in place first. Remove this file once basicsr publishes a release that imports the
public function.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from typing import Any

OLD_MODULE = "torchvision.transforms.functional_tensor"


def install() -> bool:
    """Register the stand-in module if torchvision lacks it; True when the shim was (already) needed."""
    if OLD_MODULE in sys.modules:
        return getattr(sys.modules[OLD_MODULE], "__lihq_shim__", False)
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        real = importlib.util.find_spec(OLD_MODULE)
    except ModuleNotFoundError:
        real = None
    if real is not None:  # an older torchvision still ships it: leave it alone
        return False
    from torchvision.transforms import functional

    shim = types.ModuleType(OLD_MODULE, "LIHQ shim: rgb_to_grayscale re-exported for basicsr 1.4.2")
    shim.rgb_to_grayscale = functional.rgb_to_grayscale  # type: ignore[attr-defined]
    shim.__lihq_shim__ = True  # type: ignore[attr-defined]
    sys.modules[OLD_MODULE] = shim
    return True


@dataclass(frozen=True)
class Upstream:
    """The upstream names we use, imported once with the shim in place."""

    GFPGANv1Clean: Any  # gfpgan.archs.gfpganv1_clean_arch
    GFPGANer: Any  # gfpgan.utils
    FaceRestoreHelper: Any  # facexlib.utils.face_restoration_helper
    get_center_face: Any
    RetinaFace: Any  # facexlib.detection.retinaface
    retinaface_utils: Any  # facexlib.detection.retinaface_utils (PriorBox, decode, decode_landm, nms)
    ParseNet: Any  # facexlib.parsing.parsenet
    RRDBNet: Any  # basicsr.archs.rrdbnet_arch
    img2tensor: Any  # basicsr.utils.img2tensor
    tensor2img: Any  # basicsr.utils.tensor2img
    facexlib_img2tensor: Any  # facexlib.utils.misc.img2tensor
    normalize: Any  # torchvision.transforms.functional.normalize


_UPSTREAM: Upstream | None = None


def upstream() -> Upstream:
    """Import gfpgan / basicsr / facexlib (shim first) and return the names we need."""
    global _UPSTREAM
    if _UPSTREAM is None:
        install()
        helper = importlib.import_module("facexlib.utils.face_restoration_helper")
        basicsr_utils = importlib.import_module("basicsr.utils")
        _UPSTREAM = Upstream(
            GFPGANv1Clean=importlib.import_module("gfpgan.archs.gfpganv1_clean_arch").GFPGANv1Clean,
            GFPGANer=importlib.import_module("gfpgan.utils").GFPGANer,
            FaceRestoreHelper=helper.FaceRestoreHelper,
            get_center_face=helper.get_center_face,
            RetinaFace=importlib.import_module("facexlib.detection.retinaface").RetinaFace,
            retinaface_utils=importlib.import_module("facexlib.detection.retinaface_utils"),
            ParseNet=importlib.import_module("facexlib.parsing.parsenet").ParseNet,
            RRDBNet=importlib.import_module("basicsr.archs.rrdbnet_arch").RRDBNet,
            img2tensor=basicsr_utils.img2tensor,
            tensor2img=basicsr_utils.tensor2img,
            facexlib_img2tensor=importlib.import_module("facexlib.utils.misc").img2tensor,
            normalize=importlib.import_module("torchvision.transforms.functional").normalize,
        )
    return _UPSTREAM
