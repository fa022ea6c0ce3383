"""The per-segment GFPGAN path: detect and align all frames, restore and parse faces in batches, paste.

`GFPGANer.enhance` (gfpgan/utils.py) restores one frame at a time and, inside it, one face at a time
(batch 1 for the restorer, batch 1 for the parser). Here a segment's frames go through each stage
together:

  frames --detect (batched RetinaFace)--> landmarks --select/smooth--> affines --warp--> 512² crops
  crops --GFPGAN (batches of `batch_size`)--> restored faces --ParseNet (batches)--> class maps
  frames (+ optional RealESRGAN background, batched) + faces + maps --paste (thread pool)--> frames

Every step reproduces upstream's arithmetic (see detect.py, tensors.py, paste.py); with
`batch_size=1` the output is byte-identical to GFPGANer's, with larger batches it differs only by
the float rounding a different batch shape gives the convolutions (tests/services/gfpgan).
`pad_batches` fills the last batch of a segment up to `batch_size` (repeating its last crop), so
every forward has the same shape and a frame's bytes do not depend on where a segment boundary
falls. Context frames (`context=(before, after)`) are detected and used for landmark smoothing but
not restored or returned.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lihq.torchutil import autocast, batched
from services.gfpgan.detect import Face, align_faces, detect_batch, select_faces, smooth_landmarks
from services.gfpgan.paste import paste_frame, paste_frame_torch
from services.gfpgan.tensors import parser_lut, restorer_lut, to_bgr_uint8, to_tensor


@dataclass(frozen=True)
class BatchSettings:
    """How the segment path runs (not what it computes, except for float rounding)."""

    batch_size: int = 8
    detect_batch_size: int = 16
    pad_batches: bool = True
    paste_workers: int = 2
    precision: str = "fp32"
    max_faces: int = 8
    # where the paste-back runs: "auto" = torch ops on the models' device when it is CUDA (the cv2
    # path costs ~0.1 CPU s per 1024² frame), else upstream's cv2 arithmetic; "cpu" = always cv2;
    # "device" = always torch ops (services/gfpgan/paste.py: within 2 levels of cv2)
    paste_on: str = "auto"


@dataclass(frozen=True)
class FacePlan:
    """What the restore does to a segment: scale s (output = int(h*s) x int(w*s)), options."""

    scale: float = 4.0
    only_center_face: bool = False
    paste_back: bool = True
    smooth_radius: int = 0  # 0: no landmark smoothing


@dataclass
class SegmentOutput:
    """`frames`: pasted frames (N, H', W', 3) uint8 BGR, or the restored faces when not pasting;
    `faces`: faces per output frame; `crops`/`restored`: (F, 512, 512, 3) uint8 BGR; `placed`: the
    F faces (frame, landmarks, affine); `classes`: (F, 512, 512) parser classes when pasting;
    `timings`: seconds per step."""

    frames: list[np.ndarray]
    faces: list[int]
    crops: np.ndarray
    restored: np.ndarray
    placed: list[Face] = field(default_factory=list)
    classes: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _padded(batch: np.ndarray, size: int, pad: bool) -> np.ndarray:
    if not pad or len(batch) >= size:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])


def run_restorer(
    net: nn.Module, crops: np.ndarray, device: torch.device, settings: BatchSettings
) -> np.ndarray:
    """(F, 512, 512, 3) uint8 BGR crops -> restored (F, 512, 512, 3) uint8 BGR, as GFPGANer per face."""
    out: list[np.ndarray] = []
    lut = restorer_lut()
    with torch.no_grad(), autocast(device, settings.precision):
        for s, e in batched(len(crops), settings.batch_size):
            x = to_tensor(_padded(crops[s:e], settings.batch_size, settings.pad_batches), lut, device)
            out.append(to_bgr_uint8(net(x, return_rgb=False)[0][: e - s]))
    return np.concatenate(out) if out else crops.copy()


def run_parser(
    net: nn.Module, faces: np.ndarray, device: torch.device, settings: BatchSettings
) -> np.ndarray:
    """(F, 512, 512, 3) uint8 BGR restored faces -> (F, 512, 512) uint8 parsing classes (argmax)."""
    out: list[np.ndarray] = []
    lut = parser_lut()
    with torch.no_grad(), autocast(device, settings.precision):
        for s, e in batched(len(faces), settings.batch_size):
            x = to_tensor(_padded(faces[s:e], settings.batch_size, settings.pad_batches), lut, device)
            logits = net(x)[0][: e - s]
            out.append(logits.float().argmax(dim=1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *faces.shape[1:3]), np.uint8)


def plan_faces(
    detector: Any, frames: np.ndarray, plan: FacePlan, settings: BatchSettings, detections: Any = None
) -> list[list[np.ndarray]]:
    """Landmarks of the faces to restore in every frame (context frames included)."""
    dets = (
        detections if detections is not None else detect_batch(detector, frames, settings.detect_batch_size)
    )
    shape = frames.shape[1:3]
    per_frame = [select_faces(d, shape, plan.only_center_face, settings.max_faces) for d in dets]
    return smooth_landmarks(per_frame, plan.smooth_radius)


def paste_all(
    frames: np.ndarray,
    indices: range,
    faces: list[Face],
    restored: np.ndarray,
    classes: np.ndarray,
    plan: FacePlan,
    backgrounds: list[np.ndarray] | None,
    workers: int,
    device: torch.device | None = None,
) -> list[np.ndarray]:
    """Paste every frame's restored faces back (cv2, or torch ops on `device` when given)."""
    by_frame: dict[int, list[int]] = {i: [] for i in indices}
    for k, f in enumerate(faces):
        by_frame[f.frame].append(k)

    def one(j: int, i: int) -> np.ndarray:
        ks = by_frame[i]
        bg = backgrounds[j] if backgrounds is not None else None
        if device is not None:
            return paste_frame_torch(
                frames[i],
                [restored[k] for k in ks],
                [faces[k].affine for k in ks],
                [classes[k] for k in ks],
                plan.scale,
                device,
                bg,
            )
        return paste_frame(
            frames[i],
            [restored[k] for k in ks],
            [faces[k].affine for k in ks],
            [classes[k] for k in ks],
            plan.scale,
            bg,
        )

    if workers <= 1:
        return [one(j, i) for j, i in enumerate(indices)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(len(indices)), indices))


def restore_segment(
    models: Any,
    restorer: nn.Module,
    frames: np.ndarray,
    plan: FacePlan,
    settings: BatchSettings,
    context: tuple[int, int] = (0, 0),
    background: Any = None,
    detections: Any = None,
) -> SegmentOutput:
    """Restore (N, H, W, 3) uint8 BGR frames; the first/last `context` frames are only looked at.

    `models`: services.gfpgan.checkpoint.FaceModels (detector, parser, template, device). `restorer`:
    a NoisyRestorer. `background`: a BackgroundUpsampler or None. `detections`: optional per-frame
    (n, 15) arrays in RetinaFace's format to use instead of running the detector.
    """
    t = {"detect": time.perf_counter()}
    per_frame = plan_faces(models.detector, frames, plan, settings, detections)
    indices = range(context[0], len(frames) - context[1])
    faces, crops = align_faces(frames, per_frame, models.template, indices)
    t["restore"] = time.perf_counter()
    restored = run_restorer(restorer, crops, models.device, settings)
    counts = [sum(1 for f in faces if f.frame == i) for i in indices]
    if not plan.paste_back:
        t["end"] = time.perf_counter()
        return SegmentOutput(list(restored), counts, crops, restored, faces, None, _timings(t))
    t["parse"] = time.perf_counter()
    classes = run_parser(models.parser, restored, models.device, settings)
    t["background"] = time.perf_counter()
    sel = frames[context[0] : len(frames) - context[1]]
    backgrounds = background.enhance_batch(sel, plan.scale) if background is not None else None
    t["paste"] = time.perf_counter()
    on_device = settings.paste_on == "device" or (
        settings.paste_on == "auto" and models.device.type == "cuda"
    )
    out = paste_all(
        frames,
        indices,
        faces,
        restored,
        classes,
        plan,
        backgrounds,
        settings.paste_workers,
        models.device if on_device else None,
    )
    t["end"] = time.perf_counter()
    return SegmentOutput(out, counts, crops, restored, faces, classes, _timings(t))


def _timings(t: dict[str, float]) -> dict[str, float]:
    names = list(t)
    return {f"{a}_s": t[b] - t[a] for a, b in zip(names, names[1:], strict=False)}
