"""Procedural head motion: a smooth, seeded sway and nod of the face crop, used as the FOMM driver
when no reference video is given (docs/architecture.md §1, step 4).

Each frame's pose is a pure function of (seed, preset, frame index): per degree of freedom (roll, x
shift, y shift, zoom) a sum of a few low-frequency sinusoids with seeded phases and weights, scaled
to the preset's amplitude, so any segment can be generated alone and segments concatenate exactly.
The pose is a 2-D similarity warp of the crop: x shift reads as a turn (yaw-like), y shift as a nod
(pitch-like), roll as a head tilt. There are no blinks or speech-driven accents — only the reference
video (or Wav2Lip, for the mouth) moves parts of the face.

Presets (`PRESETS`; RenderSpec.motion, `lihq render --motion`), amplitudes are peaks:

| preset | roll | x / y shift (of the size) | zoom | frequencies (Hz) | feel |
|---|---|---|---|---|---|
| `sway` (default, "") | ±3° | ±2.5 % / ±2.5 % | ±2 % | 0.13, 0.29, 0.47 | LIHQ's gentle sway and nod |
| `calm` | ±1.2° | ±1 % / ±1 % | ±0.8 % | 0.06, 0.13, 0.21 | slow drift, a newsreader |
| `lively` | ±5° | ±4 % / ±4 % | ±3.5 % | 0.23, 0.47, 0.83 | quicker, larger moves |
| `nodding` | ±1° | ±0.8 % / ±3.5 % | ±1 % | y: 0.7, 1.1; others 0.1, 0.2, 0.3 | regular nods (~1 per second) |
| `still` | 0 | 0 | 0 | - | a motionless head (the crop itself) |

Amplitudes stay small — FOMM transfers relative motion, and large driver motion distorts the face.
The default's poses and frames are exactly those of the motion before presets existed, so its cached
driver packs stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lihq.errors import InvalidInput

FREQS_HZ = (0.13, 0.29, 0.47)
DEFAULT_PRESET = "sway"


@dataclass(frozen=True)
class MotionParams:
    seed: int = 0
    fps: float = 25.0
    roll_deg: float = 3.0
    shift: float = 0.025  # fraction of the frame size, x (and y unless shift_y is set)
    zoom: float = 0.02
    freqs_hz: tuple[float, ...] = FREQS_HZ
    shift_y: float | None = None  # None: `shift`
    nod_freqs_hz: tuple[float, ...] | None = None  # the y shift's own frequencies; None: `freqs_hz`


PRESETS: dict[str, MotionParams] = {
    "sway": MotionParams(),
    "calm": MotionParams(roll_deg=1.2, shift=0.01, zoom=0.008, freqs_hz=(0.06, 0.13, 0.21)),
    "lively": MotionParams(roll_deg=5.0, shift=0.04, zoom=0.035, freqs_hz=(0.23, 0.47, 0.83)),
    "nodding": MotionParams(
        roll_deg=1.0, shift=0.008, shift_y=0.035, zoom=0.01, freqs_hz=(0.1, 0.2, 0.3), nod_freqs_hz=(0.7, 1.1)
    ),
    "still": MotionParams(roll_deg=0.0, shift=0.0, zoom=0.0),
}


def preset(name: str, seed: int = 0, fps: float = 25.0) -> MotionParams:
    """The MotionParams of preset `name` ("" = the default, `sway`); unknown names are InvalidInput."""
    base = PRESETS.get(name or DEFAULT_PRESET)
    if base is None:
        raise InvalidInput(f"motion {name[:40]!r}: expected one of {', '.join(sorted(PRESETS))}")
    return replace(base, seed=seed, fps=fps)


def _curve(seed: int, dof: int, t: np.ndarray, freqs: tuple[float, ...] = FREQS_HZ) -> np.ndarray:
    """A smooth curve in [-1, 1] for one degree of freedom, from seeded phases and weights."""
    rng = np.random.default_rng([seed, dof])
    phases = rng.uniform(0, 2 * np.pi, len(freqs))
    weights = rng.uniform(0.5, 1.0, len(freqs))
    s = sum(w * np.sin(2 * np.pi * f * t + p) for f, w, p in zip(freqs, weights, phases, strict=True))
    return s / weights.sum()


def poses(start: int, end: int, p: MotionParams) -> np.ndarray:
    """(end - start, 4) float64: roll degrees, dx, dy (fractions of the size), scale factor."""
    if not 0 <= start < end:
        raise InvalidInput(f"frame range [{start}, {end}) is empty or negative")
    t = np.arange(start, end, dtype=np.float64) / p.fps
    shift_y = p.shift if p.shift_y is None else p.shift_y
    nod = p.freqs_hz if p.nod_freqs_hz is None else p.nod_freqs_hz
    return np.stack(
        [
            p.roll_deg * _curve(p.seed, 0, t, p.freqs_hz),
            p.shift * _curve(p.seed, 1, t, p.freqs_hz),
            shift_y * _curve(p.seed, 2, t, nod),
            1.0 + p.zoom * _curve(p.seed, 3, t, p.freqs_hz),
        ],
        axis=1,
    )


def drive(face: np.ndarray, start: int, end: int, p: MotionParams) -> np.ndarray:
    """(end - start, S, S, 3) uint8: the face crop moved by the poses of frames [start, end)."""
    import cv2

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
