"""The face-box track of a whole clip: detections -> pads -> 5-frame smoothing (upstream `face_detect`).

Upstream raises "Face not detected!" for the whole video when any frame lacks a face. Here a frame
without a usable face (no detection, or a box that is empty once padded and clipped to the frame) is
an InvalidInput naming the frame ranges, unless `carry_last_box` is set: then such a frame reuses the
raw detection of the nearest earlier frame that has one (frames before the first detection reuse
the first detection). A clip with no face at all is always an error. Never a silent wrong crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lihq.errors import InvalidInput
from services.wav2lip.detect import Rect
from services.wav2lip.faces import DEFAULT_PADS, SMOOTH_T, Pads, pad_box, smooth_boxes
from services.wav2lip.objects import FaceTrack


def frame_ranges(indices: Sequence[int], offset: int = 0, limit: int = 8) -> str:
    """'3-7, 12, 20-21' for sorted frame indices (+ offset); the first `limit` ranges, then a count."""
    ranges: list[tuple[int, int]] = []
    for i in indices:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    text = [f"{a + offset}" if a == b else f"{a + offset}-{b + offset}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        text.append(f"... ({len(ranges) - limit} more ranges)")
    return ", ".join(text)


def _usable(rect: Rect | None, pads: Pads, height: int, width: int) -> bool:
    if rect is None:
        return False
    x1, y1, x2, y2 = pad_box(rect, pads, height, width)
    return x2 > x1 and y2 > y1


def _carry(rects: Sequence[Rect | None], ok: list[bool]) -> list[Rect]:
    first = next(r for r, good in zip(rects, ok, strict=True) if good)
    out: list[Rect] = []
    last = first
    for r, good in zip(rects, ok, strict=True):
        if good and r is not None:
            last = r
        out.append(last)
    return out


def build_track(
    rects: Sequence[Rect | None],
    height: int,
    width: int,
    pads: Pads = DEFAULT_PADS,
    *,
    smooth: bool = True,
    carry_last_box: bool = False,
    start: int = 0,
) -> FaceTrack:
    """FaceTrack of frames [start, start + len(rects)) from one (x1, y1, x2, y2) detection per frame."""
    n = len(rects)
    if n == 0:
        raise InvalidInput("no frames to track")
    ok = [_usable(r, pads, height, width) for r in rects]
    missing = [i for i, good in enumerate(ok) if not good]
    if missing and (not carry_last_box or len(missing) == n):
        fix = (
            "no frame of the clip has a usable face: use a clip that shows a face"
            if len(missing) == n
            else "use a clip with a visible face in every frame, or set carry_last_box to reuse the "
            "last detected box for these frames"
        )
        raise InvalidInput(
            f"no face found in frames {frame_ranges(missing, start)} of [{start}, {start + n}) "
            f"(no detection, or the padded box lies outside the frame); {fix}"
        )
    filled = _carry(rects, ok) if missing else [r for r in rects if r is not None]
    boxes = np.array([pad_box(r, pads, height, width) for r in filled], dtype=np.int64)
    if smooth:
        boxes = smooth_boxes(boxes, SMOOTH_T)
    empty = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if empty.size:
        raise InvalidInput(f"the smoothed face box is empty in frames {frame_ranges(empty.tolist(), start)}")
    x1, y1, x2, y2 = boxes.T
    return FaceTrack(
        boxes=np.stack([y1, y2, x1, x2], axis=1),
        detected=np.array(ok, dtype=bool),
        height=height,
        width=width,
        start=start,
        pads=pads.as_tuple(),
        smoothed=smooth,
        source="s3fd",
    )


def fixed_track(box_y1y2x1x2: Sequence[int], n: int, height: int, width: int, start: int = 0) -> FaceTrack:
    """Upstream `--box`: the same (y1, y2, x1, x2) box for every frame; no detection, pads or smoothing."""
    y1, y2, x1, x2 = (int(v) for v in box_y1y2x1x2)
    if not (0 <= y1 < y2 <= height and 0 <= x1 < x2 <= width):
        raise InvalidInput(
            f"box (y1={y1}, y2={y2}, x1={x1}, x2={x2}) must satisfy 0 <= y1 < y2 <= {height} and "
            f"0 <= x1 < x2 <= {width} (the frame is {width}x{height})"
        )
    if n <= 0:
        raise InvalidInput("no frames to track")
    return FaceTrack(
        boxes=np.tile(np.array([[y1, y2, x1, x2]], dtype=np.int64), (n, 1)),
        detected=np.zeros(n, dtype=bool),
        height=height,
        width=width,
        start=start,
        pads=(0, 0, 0, 0),
        smoothed=False,
        source="fixed_box",
    )
