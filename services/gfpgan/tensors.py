"""Exact, batched versions of the upstream array <-> tensor conversions around GFPGAN.

Upstream converts one image at a time on the CPU (basicsr `img2tensor` + torchvision `normalize`
before the net, `tensor2img` after it; facexlib's `img2tensor` before the parser). We convert whole
batches on the net's device and get the same bits:
- inputs are uint8, so each input conversion is a 256-entry lookup table built by running the
  upstream functions themselves on the values 0..255 (no reliance on how a device rounds a division);
- the output conversion (clamp to [-1, 1], +1, /2, *255, round half to even, uint8) uses only
  operations IEEE float32 defines exactly alike on every device.
Arrays are HWC BGR uint8 (OpenCV order, as upstream); tensors are NCHW RGB float32.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from services.gfpgan.compat import upstream

_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _ramp() -> np.ndarray:
    """(1, 256, 3) uint8 image whose pixel v has value v in every channel."""
    return np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)


def _lut_of(t: torch.Tensor) -> torch.Tensor:
    """(3, 1, 256) converted ramp -> (256,) LUT, checking all channels agree."""
    lut = t[0, 0].clone()
    if not (torch.equal(t[1, 0], lut) and torch.equal(t[2, 0], lut)):
        raise RuntimeError("upstream conversion is not channel-independent")
    return lut.to(torch.float32)


@functools.cache
def restorer_lut() -> torch.Tensor:
    """GFPGANer's face preprocessing: img2tensor(face / 255., bgr2rgb) then normalize(0.5, 0.5)."""
    up = upstream()
    t = up.img2tensor(_ramp() / 255.0, bgr2rgb=True, float32=True)
    up.normalize(t, *_NORM, inplace=True)
    return _lut_of(t)


@functools.cache
def parser_lut() -> torch.Tensor:
    """FaceRestoreHelper's parse input: img2tensor(face.astype(float32) / 255.) then normalize."""
    up = upstream()
    t = up.facexlib_img2tensor(_ramp().astype("float32") / 255.0, bgr2rgb=True, float32=True)
    up.normalize(t, *_NORM, inplace=True)
    return _lut_of(t)


@functools.cache
def unit_lut() -> torch.Tensor:
    """RealESRGANer's input scaling: img.astype(float32) / 255 (no normalisation)."""
    return torch.from_numpy(np.arange(256, dtype=np.float32) / 255)


def to_tensor(images: np.ndarray, lut: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32 RGB on `device`, values from `lut`."""
    idx = torch.from_numpy(np.ascontiguousarray(images)).to(device).long()
    out = lut.to(device)[idx]  # (B, H, W, 3) BGR
    return out.flip(-1).permute(0, 3, 1, 2).contiguous()


def to_bgr_uint8(out: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """basicsr `tensor2img(x, rgb2bgr=True, min_max=(lo, hi))` for a batch: (B, 3, H, W) -> (B, H, W, 3)."""
    x = out.float().clamp(lo, hi)
    x = (x - lo) / (hi - lo)
    x = (x * 255.0).round().to(torch.uint8)
    return x.flip(1).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def unit_to_bgr_uint8(out: torch.Tensor) -> np.ndarray:
    """RealESRGANer's output: clamp to [0, 1], RGB->BGR, *255, round, uint8. (B,3,H,W) -> (B,H,W,3)."""
    x = (out.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return x.flip(1).permute(0, 2, 3, 1).contiguous().cpu().numpy()
