"""Upstream's one-at-a-time path: gfpgan 1.3.8's own `GFPGANer.enhance`, frame by frame.

This is the behaviour the batched path (batched.py) must reproduce; tests and the bench compare
the two. `GFPGANer.__init__` would build its FaceRestoreHelper with `model_rootpath='gfpgan/weights'`
(relative to the working directory, downloading the detector and parser there) and `torch.load` the
GFPGAN file itself, so we create the object without calling it and set the five attributes `enhance`
reads (`upscale`, `bg_upsampler`, `device`, `gfpgan`, `face_helper`) to what `__init__` would have
set, using the nets already loaded from LIHQ_WEIGHTS_DIR. `enhance` itself runs unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from services.gfpgan.compat import upstream


def make_gfpganer(models: Any, restorer: nn.Module, scale: float, background: Any = None) -> Any:
    """A GFPGANer around loaded nets. `restorer` is a NoisyRestorer (GFPGANer's call signature)."""
    cls = upstream().GFPGANer
    ref = cls.__new__(cls)
    ref.upscale = scale
    ref.bg_upsampler = background
    ref.device = models.device
    ref.gfpgan = restorer
    models.helper.set_upscale_factor(scale)
    ref.face_helper = models.helper
    return ref


def enhance_frames(
    models: Any,
    restorer: nn.Module,
    frames: np.ndarray,
    scale: float,
    only_center_face: bool = False,
    background: Any = None,
) -> list[np.ndarray]:
    """GFPGANer.enhance(frame, only_center_face, paste_back=True) for each (H, W, 3) uint8 BGR frame."""
    ref = make_gfpganer(models, restorer, scale, background)
    out = []
    for frame in frames:
        _, _, restored = ref.enhance(
            frame, has_aligned=False, only_center_face=only_center_face, paste_back=True
        )
        out.append(restored)
    return out


def enhance_faces(
    models: Any, restorer: nn.Module, frames: np.ndarray, only_center_face: bool = False
) -> list[list[np.ndarray]]:
    """The restored 512x512 faces GFPGANer.enhance returns for each frame (paste_back=False)."""
    ref = make_gfpganer(models, restorer, 1)
    return [
        list(ref.enhance(f, has_aligned=False, only_center_face=only_center_face, paste_back=False)[1])
        for f in frames
    ]
