"""Synthetic RealESRGAN x2plus weights: a thin name for `lihq weights synthesize realesrgan-x2plus`.

The registry entry builds `basicsr.archs.rrdbnet_arch.RRDBNet` with the x2plus arguments
(services/gfpgan/upsampler.build_rrdbnet), fills it with LIHQ's rule (lihq.weights.fill) and writes
the official layout `{'params_ema': state_dict}` with the usual `.synthetic.json` sidecar, like every
other synthetic checkpoint (lihq.weights.synth).
"""

from __future__ import annotations

from pathlib import Path

from lihq.weights.synth import synthesize
from services.gfpgan.upsampler import ENTRY, build_rrdbnet


def rrdbnet_manifest() -> dict[str, list[int]]:
    """{key: shape} of the x2plus RRDBNet state dict (what the official params_ema holds)."""
    return {k: list(v.shape) for k, v in build_rrdbnet().state_dict().items()}


def synthesize_realesrgan(seed: int, weights_dir: Path | str) -> Path:
    """Write synthetic `realesrgan/RealESRGAN_x2plus.pth` (+ sidecar) under `weights_dir`; return it."""
    (path,) = synthesize(ENTRY, int(seed), Path(weights_dir))
    return path
