"""Procedural head motion: a smooth, seeded sway and nod of the face crop, used as the FOMM driver
when no reference video is given (docs/architecture.md §1, step 4).

Each frame's pose is a pure function of (seed, frame index): a sum of a few low-frequency sinusoids
(0.1–0.6 Hz) per degree of freedom with seeded phases, so any segment can be generated alone and
segments concatenate exactly. Amplitudes stay small (±3° roll, ±2.5 % of the size in x/y, ±2 % scale)
— FOMM transfers relative motion, and large driver motion distorts the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lihq.errors import InvalidInput

FREQS_HZ = (0.13, 0.29, 0.47)


@dataclass(frozen=True)
class MotionParams:
    seed: int = 0
    fps: float = 25.0
    roll_deg: float = 3.0
    shift: float = 0.025  # fraction of the frame size
    zoom: float = 0.02


def _curve(seed: int, dof: int, t: np.ndarray) -> np.ndarray:
    """A smooth curve in [-1, 1] for one degree of freedom, from seeded phases and weights."""
    rng = np.random.default_rng([seed, dof])
    phases = rng.uniform(0, 2 * np.pi, len(FREQS_HZ))
    weights = rng.uniform(0.5, 1.0, len(FREQS_HZ))
    s = sum(w * np.sin(2 * np.pi * f * t + p) for f, w, p in zip(FREQS_HZ, weights, phases, strict=True))
    return s / weights.sum()


def poses(start: int, end: int, p: MotionParams) -> np.ndarray:
    """(end - start, 4) float64: roll degrees, dx, dy (fractions of the size), scale factor."""
    if not 0 <= start < end:
        raise InvalidInput(f"frame range [{start}, {end}) is empty or negative")
    t = np.arange(start, end, dtype=np.float64) / p.fps
    return np.stack(
        [
            p.roll_deg * _curve(p.seed, 0, t),
            p.shift * _curve(p.seed, 1, t),
            p.shift * _curve(p.seed, 2, t),
            1.0 + p.zoom * _curve(p.seed, 3, t),
        ],
        axis=1,
    )


def drive(face: np.ndarray, start: int, end: int, p: MotionParams) -> np.ndarray:
    """(end - start, S, S, 3) uint8: the face crop moved by the poses of frames [start, end)."""
    if face.ndim != 3 or face.shape[0] != face.shape[1]:
        raise InvalidInput(f"procedural motion needs a square face crop, got {face.shape}")
    size = face.shape[0]
    out = np.empty((end - start, size, size, 3), np.uint8)
    for i, (roll, dx, dy, zoom) in enumerate(poses(start, end, p)):
        m = cv2.getRotationMatrix2D((size / 2, size / 2), roll, zoom)
        m[:, 2] += (dx * size, dy * size)
        out[i] = cv2.warpAffine(
            face, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return out
