"""Face videos the dubbing tests make themselves: scikit-image's astronaut (public domain), moved a
little from frame to frame, encoded with ffmpeg (issue #15)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np


def astronaut_frames(width: int = 320, height: int = 240, frames: int = 5, cover: bool = False) -> np.ndarray:
    """(frames, height, width, 3) uint8 RGB: the astronaut's head and shoulders, drifting 2 px a frame.
    `cover`: scaled keeping its aspect to cover the frame, cut from the top (large sizes, e.g. 1080p)."""
    from skimage import data

    img = data.astronaut()  # 512x512, the face near the top middle
    out = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        m = np.float32([[1, 0, 2 * i - frames], [0, 1, i - frames // 2]])
        moved = cv2.warpAffine(img, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
        if cover:
            side = max(width, height)
            big = cv2.resize(moved, (side, side), interpolation=cv2.INTER_CUBIC)
            x0 = (side - width) // 2
            out[i] = big[:height, x0 : x0 + width]
            continue
        crop = moved[0:448, 32 : 32 + 448 * width // height] if width > height else moved[:, :]
        out[i] = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return out


def encode(frames: np.ndarray, path: Path, fps: float = 25.0, extra: list[str] | None = None) -> Path:
    """Frames -> H.264 mp4 (crf 12) at fps; `extra` output options (e.g. rotation metadata)."""
    n, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
    cmd += ["-r", f"{fps}", "-i", "pipe:", "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv444p"]
    cmd += [*(extra or []), str(path)]
    subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True)
    return path


def with_rotation(src: Path, dst: Path, degrees: int = 90) -> Path:
    """A copy of `src` whose video stream carries rotation metadata (as phones write it)."""
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src), "-c", "copy"]
    cmd += ["-metadata:s:v:0", f"rotate={degrees}", str(dst)]
    subprocess.run(cmd, check=True, capture_output=True)
    return dst
