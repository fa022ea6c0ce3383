"""Test doubles for the GFPGAN tests: drawn faces, injected detections, tiny nets.

Why injected detections: with synthetic (random) weights RetinaFace "finds" thousands of boxes with
score ~1 and absurd or non-finite coordinates in any image, so a drawn face is not detected. The
`InjectedDetector` answers `detect_faces(img, conf)` with the boxes and 5 landmarks we drew into
that image (looked up by the image's bytes), in RetinaFace's output format. Both the batched path
and upstream's GFPGANer call `detect_faces`, so everything after detection is compared.

Why tiny nets: GFPGANv1Clean (396 GFLOP) and ParseNet (469 GFLOP) at 512² take seconds per face on
2 CPU cores. The pipeline logic (align, batch, noise, parse, paste) does not depend on their width,
so most tests use narrow versions of the same upstream classes, filled by LIHQ's synthetic-weights
rule (lihq.weights.fill) from their own state-dict shapes. The official-shape nets are exercised by verify and the servicer test.
"""

from __future__ import annotations

import copy
import functools
import hashlib

import cv2
import numpy as np
import torch

from lihq.weights import fill
from services.gfpgan.checkpoint import FaceModels, build_restorer
from services.gfpgan.compat import upstream

# FFHQ 5-point template (facexlib) scaled to a face of width 1: eyes, nose, mouth corners.
_TEMPLATE = (
    np.array([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]])
    / 512.0
)


def face_detection(cx: float, cy: float, size: float, angle_deg: float = 0.0) -> np.ndarray:
    """A RetinaFace-format row (15,) float32 for a face of `size` px centred at (cx, cy)."""
    pts = (_TEMPLATE - 0.5) * size
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = pts @ rot.T + [cx, cy]
    box = [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, 0.999]
    return np.array(box + list(pts.reshape(-1)), np.float32)


def draw_face(img: np.ndarray, det: np.ndarray) -> None:
    """Draw a crude face (skin ellipse, eyes, nose, mouth) where `det` says it is, in place (BGR)."""
    x1, y1, x2, y2 = det[:4]
    c = (int((x1 + x2) / 2), int((y1 + y2) / 2))
    axes = (max(1, int((x2 - x1) * 0.42)), max(1, int((y2 - y1) * 0.55)))
    cv2.ellipse(img, c, axes, 0, 0, 360, (120, 160, 210), -1)
    lm = det[5:].reshape(5, 2)
    r = max(1, int((x2 - x1) * 0.05))
    for x, y in lm[:2]:
        cv2.circle(img, (int(x), int(y)), r, (40, 30, 30), -1)
    cv2.circle(img, tuple(int(v) for v in lm[2]), r, (90, 110, 170), -1)
    cv2.line(img, tuple(int(v) for v in lm[3]), tuple(int(v) for v in lm[4]), (60, 60, 150), max(1, r // 2))


def make_frames(
    n: int, size: int, seed: int, faces_per_frame: int = 1
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(n, size, size, 3) uint8 BGR frames with drawn faces that move a little, + their detections."""
    rng = np.random.default_rng(seed)
    frames, dets = [], []
    for i in range(n):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = rng.integers(40, 200, size=3, dtype=np.uint8)
        img += rng.integers(0, 20, size=img.shape, dtype=np.uint8)
        rows = []
        for k in range(faces_per_frame):
            fs = size * (0.55 if faces_per_frame == 1 else 0.35)
            cx = size * (0.5 if faces_per_frame == 1 else 0.3 + 0.4 * k) + rng.uniform(-2, 2)
            cy = size * 0.5 + rng.uniform(-2, 2) + (i % 3)
            rows.append(face_detection(cx, cy, fs, angle_deg=rng.uniform(-8, 8)))
        for row in rows:
            draw_face(img, row)
        frames.append(img)
        dets.append(np.stack(rows))
    return np.stack(frames), dets


class InjectedDetector:
    """Stands in for RetinaFace: `detect_faces(img, conf)` returns the detections drawn into `img`."""

    def __init__(self, frames: np.ndarray, dets: list[np.ndarray]) -> None:
        self.table = {self.key(f): d for f, d in zip(frames, dets, strict=True)}
        self.calls = 0

    @staticmethod
    def key(img: np.ndarray) -> str:
        return hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()

    def add(self, frames: np.ndarray, dets: list[np.ndarray]) -> None:
        self.table.update({self.key(f): d for f, d in zip(frames, dets, strict=True)})

    def detect_faces(self, img: np.ndarray, conf_threshold: float = 0.8) -> np.ndarray:
        self.calls += 1
        return self.table.get(self.key(img), np.zeros((0, 15), np.float32)).copy()


def fill_module(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fill every state-dict entry with LIHQ's rule (keys, shapes and dtypes from the module)."""
    return fill.fill_module(net, seed).eval()


@functools.cache
def tiny_restorer(seed: int = 3) -> torch.nn.Module:
    """A narrow GFPGANv1Clean (shared, never modified by the code under test)."""
    return fill_module(
        build_restorer(narrow=0.0625, channel_multiplier=1, num_style_feat=64, num_mlp=2), seed
    )


@functools.cache
def tiny_parser(seed: int = 4) -> torch.nn.Module:
    """A narrow ParseNet (shared)."""
    net = upstream().ParseNet(
        in_size=512, out_size=512, min_feat_size=64, base_ch=4, parsing_ch=19, res_depth=1, ch_range=[4, 8]
    )
    return fill_module(net, seed)


def tiny_models(base: FaceModels, detector: object, seed: int = 3) -> FaceModels:
    """A copy of `base` with the tiny restorer (as version 1.4), the tiny parser and `detector`."""
    helper = copy.copy(base.helper)
    helper.face_det = detector
    helper.face_parse = tiny_parser(seed + 1)
    return FaceModels(
        helper=helper,
        device=base.device,
        restorers={"1.4": tiny_restorer(seed)},
        ids={"gfpgan-1.4": "synthetic:tiny", "facexlib": "synthetic:tiny"},
    )
