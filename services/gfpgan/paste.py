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
