"""The `haar` face detector of TrackFaces: OpenCV's bundled frontal-face cascade, no weights.

Used for a face video rendered with synthetic weights (issue #15): random S3FD weights find no face,
and a video has no aligned crop whose box is known, so the track comes from this real detector
instead. Renders with real weights use S3FD.
"""

from __future__ import annotations

import numpy as np

from services.media.face import detect_faces
from services.wav2lip.detect import Rect

MODEL_ID = "opencv-haar:frontalface_default"


def detect_haar(frames: np.ndarray) -> list[Rect | None]:
    """The largest Haar detection (x1, y1, x2, y2) of each (N, H, W, 3) uint8 RGB frame, or None."""
    out: list[Rect | None] = []
    for frame in frames:
        boxes = detect_faces(frame)
        if boxes:
            x, y, w, h = boxes[0]
            out.append((int(x), int(y), int(x + w), int(y + h)))
        else:
            out.append(None)
    return out
