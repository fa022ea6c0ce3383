"""Face detection, selection, optional smoothing and alignment for a whole segment.

Same steps as facexlib's FaceRestoreHelper under GFPGANer (facexlib 0.3.0,
`utils/face_restoration_helper.py`: get_face_landmarks_5 with eye_dist_threshold=5, then
align_warp_face), run on all frames of a segment:
- detection: RetinaFace's `detect_faces(img, conf_threshold=0.97)` (nms 0.4, original size), but
  one network forward per batch of frames; the decoding, score threshold, sort and NMS are done
  per frame exactly as `detect_faces` does them, with facexlib's own helpers;
- selection: faces whose eye distance is < 5 px are dropped; `only_center_face` keeps the face
  whose box centre is closest to the frame centre (facexlib's get_center_face);
- alignment: a similarity transform from the 5 landmarks to the FFHQ template
  (cv2.estimateAffinePartial2D, LMEDS), then a 512x512 warp with a grey (135, 133, 132) border.
Beyond upstream, and only hit by garbage detections (e.g. synthetic detector weights): faces with
non-finite landmarks or a degenerate transform are skipped, and at most `max_faces` faces are kept
per frame (the highest-scoring ones).

Landmark smoothing (off by default): detector jitter moves the crop from frame to frame, which
shows as flicker after restoration. `smooth_landmarks` replaces each frame's landmarks by the mean
over a centred window of 2*radius+1 frames, within runs of consecutive frames that have exactly one
face (the window shrinks at run and pack ends; pass context frames around a segment so its edges
are smoothed like its middle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from lihq.torchutil import batched
from services.gfpgan.checkpoint import FACE_SIZE
from services.gfpgan.compat import upstream

CONF_THRESHOLD = 0.97  # GFPGANer -> get_face_landmarks_5 -> detect_faces(img, 0.97)
NMS_THRESHOLD = 0.4
EYE_DIST_THRESHOLD = 5
BORDER_VALUE = (135, 133, 132)


@dataclass(frozen=True)
class Face:
    """One face to restore: `frame` index in the pack, landmarks (5, 2) float32 (x, y) in frame
    pixels, and the 2x3 float64 affine from the frame to the 512x512 crop."""

    frame: int
    landmarks: np.ndarray
    affine: np.ndarray


def _decode_frame(
    variance: Any,
    hw: tuple[int, int],
    loc: torch.Tensor,
    conf: torch.Tensor,
    landm: torch.Tensor,
    priors: Any,
) -> np.ndarray:
    """One frame's raw outputs -> (n, 15) float32 [x1 y1 x2 y2 score, 5 x (x, y)], as detect_faces."""
    ru = upstream().retinaface_utils
    h, w = hw
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=loc.device)
    scale1 = torch.tensor([w, h] * 5, dtype=torch.float32, device=loc.device)
    boxes = (ru.decode(loc, priors, variance) * scale / 1).cpu().numpy()
    scores = conf.cpu().numpy()[:, 1]
    landmarks = (ru.decode_landm(landm, priors, variance) * scale1 / 1).cpu().numpy()
    inds = np.where(scores > CONF_THRESHOLD)[0]
    boxes, landmarks, scores = boxes[inds], landmarks[inds], scores[inds]
    order = scores.argsort()[::-1]
    boxes, landmarks, scores = boxes[order], landmarks[order], scores[order]
    bounding = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
    keep = ru.py_cpu_nms(bounding, NMS_THRESHOLD)
    return np.concatenate((bounding[keep, :], landmarks[keep]), axis=1)


def _frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 view. For B = 1 the exact strides detect_faces gives
    its input (transpose + unsqueeze), so the convolutions take the same path and agree bit for bit."""
    if len(frames) == 1:
        return torch.from_numpy(frames[0].astype(np.float32).transpose(2, 0, 1)).unsqueeze(0)
    return torch.from_numpy(frames.astype(np.float32)).permute(0, 3, 1, 2)


def detect_batch(detector: Any, frames: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """RetinaFace on (N, H, W, 3) uint8 BGR frames -> per frame an (n, 15) float32 array.

    `detector` is facexlib's RetinaFace, or any object with `detect_faces(img, conf)` (then it is
    called frame by frame; tests inject known detections that way).
    """
    if not hasattr(detector, "cfg") or not isinstance(detector, torch.nn.Module):
        return [np.asarray(detector.detect_faces(f, CONF_THRESHOLD), np.float32) for f in frames]
    h, w = frames.shape[1:3]
    ru = upstream().retinaface_utils
    device = detector.mean_tensor.device
    priors = ru.PriorBox(detector.cfg, image_size=(h, w)).forward().to(device)
    out: list[np.ndarray] = []
    with torch.no_grad():
        for s, e in batched(len(frames), batch_size):
            x = _frames_tensor(frames[s:e]).to(device)
            loc, conf, landm = detector(x - detector.mean_tensor)
            variance = detector.cfg["variance"]
            out.extend(
                _decode_frame(variance, (h, w), loc[i], conf[i], landm[i], priors) for i in range(e - s)
            )
    return out


def select_faces(
    dets: np.ndarray, shape: tuple[int, int], only_center_face: bool, max_faces: int
) -> list[np.ndarray]:
    """Landmarks (5, 2) float32 of the faces GFPGANer would keep in one frame, in detection order."""
    landmarks, boxes = [], []
    for bbox in np.asarray(dets, np.float32).reshape(-1, 15):
        eye_dist = np.linalg.norm([bbox[5] - bbox[7], bbox[6] - bbox[8]])
        if eye_dist < EYE_DIST_THRESHOLD or not np.all(np.isfinite(bbox)):
            continue
        landmarks.append(np.array([[bbox[i], bbox[i + 1]] for i in range(5, 15, 2)]))
        boxes.append(bbox[0:5])
    if not landmarks:
        return []
    if only_center_face:
        h, w = shape
        _, idx = upstream().get_center_face(boxes, h, w)
        return [landmarks[idx]]
    return landmarks[:max_faces] if max_faces > 0 else landmarks


def smooth_landmarks(per_frame: list[list[np.ndarray]], radius: int) -> list[list[np.ndarray]]:
    """Centred moving average of single-face landmarks over runs of one-face frames (see module doc)."""
    if radius <= 0:
        return per_frame
    out = [list(f) for f in per_frame]
    n, i = len(per_frame), 0
    while i < n:
        if len(per_frame[i]) != 1:
            i += 1
            continue
        j = i
        while j < n and len(per_frame[j]) == 1:
            j += 1
        run = np.stack([per_frame[k][0].astype(np.float64) for k in range(i, j)])
        for k in range(i, j):
            lo, hi = max(i, k - radius), min(j, k + radius + 1)
            out[k] = [run[lo - i : hi - i].mean(axis=0).astype(np.float32)]
        i = j
    return out


def _valid_affine(affine: np.ndarray | None) -> bool:
    if affine is None or not np.all(np.isfinite(affine)):
        return False
    det = float(np.linalg.det(affine[:, :2]))
    return abs(det) > 1e-12 and np.all(np.isfinite(cv2.invertAffineTransform(affine)))


def align_faces(
    frames: np.ndarray, per_frame: list[list[np.ndarray]], template: np.ndarray, indices: range
) -> tuple[list[Face], np.ndarray]:
    """Faces of the frames in `indices` and their (F, 512, 512, 3) uint8 BGR crops, frame order."""
    faces: list[Face] = []
    crops: list[np.ndarray] = []
    for i in indices:
        for lm in per_frame[i]:
            affine = cv2.estimateAffinePartial2D(lm, template, method=cv2.LMEDS)[0]
            if not _valid_affine(affine):
                continue
            crop = cv2.warpAffine(
                frames[i],
                affine,
                (FACE_SIZE, FACE_SIZE),
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=BORDER_VALUE,
            )
            faces.append(Face(i, lm, affine))
            crops.append(crop)
    stack = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return faces, stack
