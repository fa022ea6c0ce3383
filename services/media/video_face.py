"""Dubbing: a video as the face (issue #15). Pure array and file work, no store, no gRPC.

The face video's own frames are the output's frames: at the source's own (average) frame rate and
display size, for as long as the speech lasts. Output frame i shows source frame `pingpong(i, n)`:
0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... — a video shorter than the speech plays back and forth (no jump
cut); a longer one is cut at the speech's end.

* **Rotation metadata** (phone videos) is applied while decoding (`lihq.media.iter_video` /
  `decode_video`, ffmpeg's autorotate): frames, and so the output, are in display orientation, and
  the output carries no rotation tag.
* **Variable frame rate** is read at the stream's average rate (`avg_frame_rate`) through ffmpeg's
  `fps` filter (sample and hold): the output is constant-rate at that average.
* **Odd sizes** travel unchanged through the stages; the final encode (H.264 yuv420p needs even
  sizes) pads the last column / row by repeating it (`lihq.media.encode`), so an odd-sized input
  comes out one pixel wider / taller, never cropped.

GFPGAN sees a square crop around each frame's tracked face box (`crop_region`); the restored crop is
pasted back into the ORIGINAL frame inside that box only, with a mask that ramps from 0 at the box's
edge to 1 a few pixels in (`feather_mask`), so every pixel outside the box is the source's exactly,
and frames without a detected face are the source frames unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lihq import media
from lihq.errors import InvalidInput
from lihq.media.kinds import is_video_file, looks_like_video  # noqa: F401 - re-exported for the stage

CROP_SIZE = 512  # GFPGAN's working face size
CROP_SCALE = 1.5  # crop side / the tracked box's longer side
FEATHER = 0.15  # the mask's ramp, as a share of the box's shorter side


def pingpong(i: int, n: int) -> int:
    """Source frame of output frame `i` for a source of `n` frames: back and forth, ends not repeated."""
    if n < 1:
        raise InvalidInput(f"a video of {n} frames has nothing to show")
    if i < 0:
        raise InvalidInput(f"frame {i}: must be >= 0")
    if n == 1:
        return 0
    period = 2 * (n - 1)
    j = i % period
    return j if j < n else period - j


@dataclass(frozen=True)
class SourceInfo:
    fps: float
    width: int  # display size (rotation applied)
    height: int
    frames: int  # source frames at fps


def source_info(path: Path, max_duration_s: float = 3600.0) -> SourceInfo:
    """Probe a face video: its average rate, display size and frame count at that rate."""
    info = media.probe(path, require_video=True, max_duration=max_duration_s)
    length = info.video_duration or info.duration
    if info.is_image or length <= 0 or not info.fps:
        raise InvalidInput("expected a video with a duration and a frame rate; this looks like a still image")
    fps = float(info.fps)
    return SourceInfo(fps, int(info.width), int(info.height), media.frame_count(length, fps))


def read_segment(path: Path, src: SourceInfo, start: int, end: int) -> np.ndarray:
    """Output frames [start, end) (ping-pong over the source), decoding only the source range they use."""
    if not 0 <= start < end:
        raise InvalidInput(f"segment [{start}, {end}): need 0 <= start < end")
    idx = np.array([pingpong(i, src.frames) for i in range(start, end)])
    lo, hi = int(idx.min()), int(idx.max())
    frames = media.decode_video(path, start=lo / src.fps, duration=(hi - lo + 1) / src.fps, fps=src.fps)
    if len(frames) < hi - lo + 1:
        raise InvalidInput(f"decoded {len(frames)} of {hi - lo + 1} frames from {lo / src.fps:.3f} s")
    return np.ascontiguousarray(frames[idx - lo])


def read_samples(path: Path, src: SourceInfo, count: int) -> np.ndarray:
    """`count` source frames spread evenly from the first to the last (the render's face check)."""
    idx = sorted({int(round(x)) for x in np.linspace(0, src.frames - 1, max(1, min(count, src.frames)))})
    return np.concatenate(
        [media.decode_video(path, start=j / src.fps, duration=1 / src.fps, fps=src.fps)[:1] for j in idx]
    )


def crop_region(box_y1y2x1x2: Sequence[int], size: int = CROP_SIZE) -> np.ndarray:
    """The 2x3 affine that maps a frame onto the size x size square crop centred on the box."""
    y1, y2, x1, x2 = (float(v) for v in box_y1y2x1x2)
    side = max(16.0, CROP_SCALE * max(x2 - x1, y2 - y1))
    s = size / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])


def crop_faces(frames: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of (N, H, W, 3) frames around boxes (N, 4) (y1, y2, x1, x2)."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        out[i] = cv2.warpAffine(
            frame,
            crop_region(box, size),
            (size, size),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


def feather_mask(height: int, width: int, feather: float = FEATHER) -> np.ndarray:
    """(height, width) float32 in (0, 1]: ~0 at the box's edge, 1 from `feather` x its shorter side in."""
    ramp = max(1.0, feather * min(height, width))
    y = np.minimum(np.arange(height) + 0.5, height - np.arange(height) - 0.5)
    x = np.minimum(np.arange(width) + 0.5, width - np.arange(width) - 0.5)
    d = np.minimum(y[:, None], x[None, :]) / ramp
    t = np.clip(d, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep: no visible seam


def paste_faces(
    originals: np.ndarray,
    restored: np.ndarray,
    boxes: np.ndarray,
    detected: np.ndarray,
    size: int = CROP_SIZE,
) -> np.ndarray:
    """The original frames with each detected frame's box replaced by its restored crop, feathered.

    Pixels outside a frame's box, and every pixel of a frame without a detected face, are the
    original's exactly."""
    if len(originals) != len(restored) or len(originals) != len(boxes) or len(boxes) != len(detected):
        raise InvalidInput(
            f"paste: {len(originals)} frames, {len(restored)} restored crops, {len(boxes)} boxes, "
            f"{len(detected)} flags: they must agree"
        )
    if restored.shape[1:3] != (size, size):
        raise InvalidInput(
            f"paste: restored crops are {restored.shape[2]}x{restored.shape[1]}, expected {size}²"
        )
    out = originals.copy()
    h, w = originals.shape[1:3]
    for i in np.flatnonzero(detected):
        y1, y2, x1, x2 = (int(v) for v in boxes[i])
        y1, y2, x1, x2 = max(0, y1), min(h, y2), max(0, x1), min(w, x2)
        if y2 <= y1 or x2 <= x1:
            continue
        inv = cv2.invertAffineTransform(crop_region(boxes[i], size))
        inv[:, 2] -= (x1, y1)  # crop -> box-local coordinates
        face = cv2.warpAffine(
            restored[i], inv, (x2 - x1, y2 - y1), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        )
        m = feather_mask(y2 - y1, x2 - x1)[:, :, None]
        roi = originals[i, y1:y2, x1:x2].astype(np.float32)
        out[i, y1:y2, x1:x2] = np.clip(roi + m * (face.astype(np.float32) - roi) + 0.5, 0, 255).astype(
            np.uint8
        )
    return out
