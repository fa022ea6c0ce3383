"""Face prep and paste-back on CPU: find the face, cut the square crop the models see, put it back.

Detection uses OpenCV's bundled Haar cascade (works offline; opencv-python 4.x ships the cascades).
The crop is FFHQ-like in framing: a square centred on the detected face, `scale` times the face box
(the default 1.9 leaves the hair and chin in, as vox-256 frames do), shifted up a little, padded by
edge replication where it leaves the photo. `CropTransform` records where the crop came from so the
final frames can be pasted back onto the original photo.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from lihq.errors import InvalidInput

_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class CropTransform:
    """Square crop [x0, x0+size) × [y0, y0+size) in photo pixels (may extend past the photo)."""

    x0: int
    y0: int
    size: int
    photo_w: int
    photo_h: int
    face: tuple[int, int, int, int]  # detected box x, y, w, h

    def face_in_crop(self, out: int) -> tuple[int, int, int, int]:
        """The detected face box (x, y, w, h) in the pixels of an `out`×`out` crop."""
        k = out / self.size
        x, y, w, h = self.face
        return (round((x - self.x0) * k), round((y - self.y0) * k), round(w * k), round(h * k))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CropTransform:
        """Parse a stored transform; the store is untrusted, so anything else is INVALID_ARGUMENT."""
        try:
            d = json.loads(data)
            out = cls(
                int(d["x0"]),
                int(d["y0"]),
                int(d["size"]),
                int(d["photo_w"]),
                int(d["photo_h"]),
                tuple(int(v) for v in d["face"]),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
            raise InvalidInput(
                "transform: not a crop transform written by PrepareFace (JSON with x0, y0, size, photo_w, "
                "photo_h, face)"
            ) from None
        if out.size <= 0 or out.photo_w <= 0 or out.photo_h <= 0 or len(out.face) != 4:
            raise InvalidInput("transform: sizes must be positive and face has 4 numbers")
        return out


def detect_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Haar-cascade face boxes (x, y, w, h), largest first. `rgb`: (H, W, 3) uint8."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE)
    if cascade.empty():
        raise InvalidInput("OpenCV's Haar cascades are missing (opencv-python 5.x dropped them; use 4.x)")
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = min(rgb.shape[:2])
    boxes = cascade.detectMultiScale(gray, 1.1, 5, minSize=(max(24, side // 12),) * 2)
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


def crop_transform(rgb: np.ndarray, scale: float = 1.9, lift: float = 0.1) -> CropTransform:
    """The square crop around the largest face; InvalidInput when there is none."""
    faces = detect_faces(rgb)
    if not faces:
        raise InvalidInput(
            "no face found in the image: use a frontal, well-lit photo where the face is at least 1/12 of the "
            "image's shorter side"
        )
    x, y, w, h = faces[0]
    size = int(round(max(w, h) * scale))
    cx, cy = x + w / 2, y + h / 2 - lift * h
    return CropTransform(
        int(round(cx - size / 2)), int(round(cy - size / 2)), size, rgb.shape[1], rgb.shape[0], faces[0]
    )


def cut_crop(rgb: np.ndarray, t: CropTransform, out: int = 256) -> np.ndarray:
    """(out, out, 3) uint8 crop; parts outside the photo replicate its edge."""
    pad = max(0, -t.x0, -t.y0, t.x0 + t.size - t.photo_w, t.y0 + t.size - t.photo_h)
    src = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
    y0, x0 = t.y0 + pad, t.x0 + pad
    crop = src[y0 : y0 + t.size, x0 : x0 + t.size]
    interp = cv2.INTER_AREA if t.size > out else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (out, out), interpolation=interp))


def feather_mask(size: int, border: float = 0.08) -> np.ndarray:
    """(size, size, 1) float32 in [0, 1]: 1 inside, a smooth ramp over the outer `border` fraction."""
    ramp = max(1, int(size * border))
    r = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    r = np.clip(r / ramp, 0, 1)
    return (np.minimum(r[:, None], r[None, :]) ** 1.5)[..., None]


def paste_back(frames: np.ndarray, photo: np.ndarray, t: CropTransform) -> np.ndarray:
    """Put (N, S, S, 3) frames back where the crop came from: (N, H', W', 3), even H'/W' (H.264)."""
    if frames.ndim != 4 or frames.shape[1] != frames.shape[2]:
        raise InvalidInput(f"paste-back needs square frames, got {frames.shape[1:3]}")
    if photo.shape[:2] != (t.photo_h, t.photo_w):
        raise InvalidInput(
            f"photo is {photo.shape[1]}x{photo.shape[0]}, the crop was made on {t.photo_w}x{t.photo_h}"
        )
    h, w = t.photo_h - t.photo_h % 2, t.photo_w - t.photo_w % 2
    mask = feather_mask(t.size)
    xs, ys = max(0, t.x0), max(0, t.y0)
    xe, ye = min(t.photo_w, t.x0 + t.size), min(t.photo_h, t.y0 + t.size)
    m = mask[ys - t.y0 : ye - t.y0, xs - t.x0 : xe - t.x0]
    out = np.empty((len(frames), h, w, 3), np.uint8)
    base = photo[:h, :w].astype(np.float32)
    for i, f in enumerate(frames):
        big = cv2.resize(
            f, (t.size, t.size), interpolation=cv2.INTER_AREA if f.shape[0] > t.size else cv2.INTER_CUBIC
        )
        region = big[ys - t.y0 : ye - t.y0, xs - t.x0 : xe - t.x0].astype(np.float32)
        canvas = base.copy()
        ph, pw = min(ye, h) - ys, min(xe, w) - xs
        canvas[ys : ys + ph, xs : xs + pw] = (
            m[:ph, :pw] * region[:ph, :pw] + (1 - m[:ph, :pw]) * canvas[ys : ys + ph, xs : xs + pw]
        )
        out[i] = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return out
