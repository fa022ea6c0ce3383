"""Paste restored faces back into a frame, exactly as facexlib's FaceRestoreHelper does for GFPGANer.

facexlib 0.3.0 `get_inverse_affine` + `paste_faces_to_input_image` with use_parse=True, reproduced
step for step (same OpenCV calls, same float64 arithmetic, same order over faces), except that the
parser's class map is computed beforehand, for a whole batch of faces (services/gfpgan/batched.py):
- background: the input frame (or the upsampler's output) resized to (int(h * s), int(w * s)) with
  LANCZOS4;
- per face, in detection order: inverse affine = invert(affine) * s, plus 0.5 * s on the offsets
  when s > 1; the restored face warped back (bilinear, black border);
- soft mask: parser classes 1-13 and 15 -> 255, others (background, neck 14, cloth 16, hat 17,
  18) -> 0; Gaussian blur 101x101 sigma 11 twice; a 10 px black border; / 255; warped back
  (flags=3); blended `mask * face + (1 - mask) * background` in float64;
- the result is truncated to uint8 (astype, not rounded), as upstream.
Arrays: HWC BGR uint8; masks float64 in [0, 1]; class maps (512, 512) uint8 in 0..18.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# FaceRestoreHelper's MASK_COLORMAP as a lookup table over the 19 parsing classes.
MASK_VALUES = np.array([0] + [255] * 13 + [0, 255, 0, 0, 0], dtype=np.float64)
_BLUR = ((101, 101), 11)
_BORDER = 10


def inverse_affine(affine: np.ndarray, scale: float) -> np.ndarray:
    """Crop -> output-frame transform for an output `scale` times the input (with the 0.5*s offset)."""
    inv = cv2.invertAffineTransform(affine)
    inv *= scale
    if scale > 1:
        inv[:, 2] += 0.5 * scale
    return inv


def soft_mask(classes: np.ndarray) -> np.ndarray:
    """(512, 512) parser classes -> (512, 512) float64 mask in [0, 1], blurred, border zeroed."""
    mask = MASK_VALUES[classes]
    mask = cv2.GaussianBlur(mask, *_BLUR)
    mask = cv2.GaussianBlur(mask, *_BLUR)
    mask[:_BORDER, :] = 0
    mask[-_BORDER:, :] = 0
    mask[:, :_BORDER] = 0
    mask[:, -_BORDER:] = 0
    return mask / 255.0


def output_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """(h_up, w_up) of the pasted frame, as FaceRestoreHelper computes it."""
    return int(h * scale), int(w * scale)


def paste_frame(
    frame: np.ndarray,
    faces: list[np.ndarray],
    affines: list[np.ndarray],
    classes: list[np.ndarray],
    scale: float,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Paste `faces` ((512, 512, 3) uint8 BGR each) into `frame` scaled by `scale`; (H', W', 3) uint8."""
    h, w = frame.shape[:2]
    h_up, w_up = output_size(h, w, scale)
    src = frame if background is None else background
    out: np.ndarray = cv2.resize(src, (w_up, h_up), interpolation=cv2.INTER_LANCZOS4)
    for face, affine, cls in zip(faces, affines, classes, strict=True):
        inv = inverse_affine(affine, scale)
        inv_restored = cv2.warpAffine(face, inv, (w_up, h_up))
        mask = cv2.resize(soft_mask(cls), face.shape[:2])
        mask = cv2.warpAffine(mask, inv, (w_up, h_up), flags=3)
        alpha = mask[:, :, None]
        out = alpha * inv_restored + (1 - alpha) * out
    return out.astype(np.uint8)


# -- the same paste-back as torch ops (GPU) ------------------------------------------------------
# At 1024² the cv2 path costs ~0.1-0.2 CPU s per frame (Lanczos resize, two 101x101 blurs, two warps,
# a float64 blend): far over a 150 fps replica's CPU budget (bench/README.md, "CPU work per frame").
# `paste_frame_torch` does the same steps on the device the faces were restored on. It is not
# bit-identical to upstream: the background upscale is bicubic (torch has no Lanczos), warps use
# grid_sample's float weights (cv2 uses 1/32-pixel fixed point) and the blend runs in float32; the
# difference is a few levels at most (tests/services/gfpgan/test_paste_torch.py bounds it). The cv2
# path stays the default on CPU, where it is upstream's arithmetic exactly.
_MASK_LUT: dict[Any, Any] = {}


def _gauss_kernel(device: Any) -> Any:
    import torch

    key = ("gauss", device)
    if key not in _MASK_LUT:
        (k, _), sigma = _BLUR
        x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
        g = torch.exp(-(x**2) / (2 * sigma**2))
        _MASK_LUT[key] = (g / g.sum()).to(device=device, dtype=torch.float32)
    return _MASK_LUT[key]


def soft_mask_torch(classes: Any) -> Any:
    """(F, 512, 512) uint8 class maps (tensor) -> (F, 512, 512) float32 masks in [0, 1]: LUT, two
    separable Gaussian blurs (101 taps, sigma 11, reflect-101 borders as cv2's default), border zeroed."""
    import torch
    import torch.nn.functional as F

    lut = torch.as_tensor(MASK_VALUES / 255.0, dtype=torch.float32, device=classes.device)
    m = lut[classes.long()][:, None]  # (F, 1, H, W)
    g = _gauss_kernel(classes.device)
    k = g.numel()
    for _ in range(2):
        m = F.conv2d(F.pad(m, (k // 2, k // 2, 0, 0), mode="reflect"), g.view(1, 1, 1, k))
        m = F.conv2d(F.pad(m, (0, 0, k // 2, k // 2), mode="reflect"), g.view(1, 1, k, 1))
    m = m[:, 0]
    m[:, :_BORDER, :] = 0
    m[:, -_BORDER:, :] = 0
    m[:, :, :_BORDER] = 0
    m[:, :, -_BORDER:] = 0
    return m


def lanczos4_matrix(n_in: int, n_out: int, device: Any) -> Any:
    """(n_out, n_in) float32 weights of cv2.resize's INTER_LANCZOS4 along one axis: output pixel i
    samples source position (i + 0.5) * n_in / n_out - 0.5 with 8 taps sinc(d) * sinc(d / 4),
    normalised, indices outside the image clamped to its edge."""
    import torch

    key = ("lanczos", n_in, n_out, str(device))
    if key not in _MASK_LUT:
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        base = np.floor(pos).astype(np.int64)
        frac = pos - base
        taps = np.arange(-3, 5)
        d = frac[:, None] - taps[None, :]
        w = np.sinc(d) * np.sinc(d / 4)
        w /= w.sum(axis=1, keepdims=True)
        idx = np.clip(base[:, None] + taps[None, :], 0, n_in - 1)
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.repeat(np.arange(n_out), 8), idx.ravel()), w.ravel())
        _MASK_LUT[key] = torch.as_tensor(m, dtype=torch.float32, device=device)
    return _MASK_LUT[key]


def _warp(src: Any, inv: np.ndarray, out_hw: tuple[int, int]) -> Any:
    """cv2.warpAffine(src, inv, (w, h)) (bilinear, zero border) for a (C, h_s, w_s) float tensor."""
    import torch
    import torch.nn.functional as F

    h, w = out_hw
    hs, ws = src.shape[-2:]
    back = cv2.invertAffineTransform(inv)  # output pixel -> source pixel
    a = torch.as_tensor(back, dtype=torch.float32, device=src.device)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=src.device, dtype=torch.float32),
        torch.arange(w, device=src.device, dtype=torch.float32),
        indexing="ij",
    )
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    grid = torch.stack((sx * (2 / max(ws - 1, 1)) - 1, sy * (2 / max(hs - 1, 1)) - 1), dim=-1)
    return F.grid_sample(src[None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def paste_frame_torch(
    frame: np.ndarray,
    faces: list[np.ndarray],
    affines: list[np.ndarray],
    classes: list[np.ndarray],
    scale: float,
    device: Any,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """`paste_frame` as torch ops on `device`; (H', W', 3) uint8 BGR (see the note above)."""
    import torch
    import torch.nn.functional as F

    h, w = frame.shape[:2]
    h_up, w_up = output_size(h, w, scale)
    src = frame if background is None else background
    bg = torch.from_numpy(np.ascontiguousarray(src)).to(device).permute(2, 0, 1).float()
    if bg.shape[-2:] != (h_up, w_up):  # cv2.resize(..., INTER_LANCZOS4) as two matrix products
        wy = lanczos4_matrix(bg.shape[-2], h_up, device)
        wx = lanczos4_matrix(bg.shape[-1], w_up, device)
        bg = (wy @ bg @ wx.T).round().clamp(0, 255)  # a uint8 image, as upstream blends onto
    out = bg
    if faces:
        masks = soft_mask_torch(torch.from_numpy(np.stack(classes)).to(device))
        for face, affine, mask in zip(faces, affines, masks, strict=True):
            inv = inverse_affine(affine, scale)
            f = torch.from_numpy(np.ascontiguousarray(face)).to(device).permute(2, 0, 1).float()
            if mask.shape != f.shape[-2:]:
                mask = F.interpolate(mask[None, None], size=f.shape[-2:], mode="bilinear")[0, 0]
            warped = _warp(torch.cat([f, mask[None]]), inv, (h_up, w_up))
            alpha = warped[3:4]
            out = alpha * warped[:3] + (1 - alpha) * out
    return out.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
