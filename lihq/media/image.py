"""Still images via Pillow: EXIF orientation applied, any mode -> 8-bit RGB / RGBA arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lihq.errors import InvalidInput
from lihq.media._ff import check_file

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _open(path: str | Path) -> Image.Image:
    """Open, fully load and EXIF-orient an image; InvalidInput if Pillow cannot read it."""
    p = check_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            oriented = ImageOps.exif_transpose(im)
    except Image.DecompressionBombError:
        raise InvalidInput(f"{p}: image has too many pixels to load safely") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InvalidInput(f"cannot read image {p}: {e}") from None
    return oriented


def _gray16_to_rgba(im: Image.Image) -> np.ndarray:
    """16-bit (and 32-bit int) grayscale: map 0..65535 to 0..255 (Pillow's convert would clip)."""
    a = np.asarray(im).astype(np.float64)
    g = np.clip(np.round(a / 257.0), 0, 255).astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])


def _float_to_rgba(im: Image.Image) -> np.ndarray:
    """32-bit float grayscale: 0..1 if that is its range, else taken as 0..255."""
    a = np.asarray(im).astype(np.float64)
    finite = a[np.isfinite(a)]
    scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
    g = np.clip(np.round(np.nan_to_num(a) * scale), 0, 255).astype(np.uint8)
    return np.dstack([g, g, g, np.full_like(g, 255)])


def _to_rgba(im: Image.Image) -> np.ndarray:
    if im.mode in _SIXTEEN_BIT_MODES:
        return _gray16_to_rgba(im)
    if im.mode == "F":
        return _float_to_rgba(im)
    if im.mode not in ("RGBA", "RGB", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr", "RGBa", "La"):
        im = im.convert("RGB")  # LAB, HSV, ... have no direct path to RGBA
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    return np.ascontiguousarray(rgba)


def load_image_rgba(path: str | Path) -> np.ndarray:
    """Load an image as (H, W, 4) uint8 RGBA, EXIF orientation applied; alpha 255 where none is stored.

    Grayscale, palette, CMYK and 16-bit images are converted to 8-bit RGB(A). Unreadable -> InvalidInput.
    """
    im = _open(path)
    return _to_rgba(im)


def composite(rgba: np.ndarray, background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Alpha-composite (H, W, 4) uint8 RGBA over a solid RGB `background`; returns (H, W, 3) uint8 RGB."""
    bg = _check_background(background)
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    mixed = rgb * alpha + np.asarray(bg, dtype=np.uint32) * (255 - alpha)
    return ((mixed + 127) // 255).astype(np.uint8)


def _check_background(background: Sequence[int]) -> tuple[int, int, int]:
    vals = tuple(int(v) for v in background)
    if len(vals) != 3 or not all(0 <= v <= 255 for v in vals):
        raise InvalidInput(f"background must be three values in 0..255 (R, G, B), got {background!r}")
    return vals  # type: ignore[return-value]


def load_image(path: str | Path, *, background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Load an image as (H, W, 3) uint8 RGB: EXIF orientation applied, transparency composited over
    `background` (RGB), grayscale / palette / 16-bit converted to 8-bit RGB. Unreadable -> InvalidInput.
    """
    _check_background(background)
    return composite(load_image_rgba(path), background)
