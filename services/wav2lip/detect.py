"""S3FD post-processing as upstream Wav2Lip's face_detection does it, batched over frames.

Upstream (Rudrabha/Wav2Lip @ 5c90fa9b, `face_detection/detection/sfd/{detect,bbox}.py`,
`sfd_detector.py`, `api.py`), per image:

1. softmax over the 2 classification channels of each level; score = the face channel;
2. candidates: every position of every level with score > 0.05, decoded against its prior
   (stride s = 4 .. 128, centre (s/2 + w s, s/2 + h s), size 4 s, variances 0.1 / 0.2);
3. NMS at IoU 0.3 with the "+1" area convention, then keep scores > 0.5;
4. the first kept box (the highest score) clipped below at 0 and truncated to int.

Step 4 takes the first box NMS keeps, which is always the top-scoring candidate, so `detect_top`
skips the NMS loop and takes the argmax directly (same result; `nms` and `detections` are kept, and
tested against it). Exact score ties: upstream's order comes from numpy's unstable `argsort`; we take
the last candidate in (level, row, column) order, which is what a stable sort gives.

Boxes are (x1, y1, x2, y2) in pixels of the input frame, not clipped above (inference clips them
with the pads later).
"""

from __future__ import annotations

import numpy as np
import torch

from services.wav2lip.nets.s3fd import MEAN_RGB, STRIDES

CANDIDATE_SCORE = 0.05
NMS_IOU = 0.3
FACE_SCORE = 0.5
VARIANCES = (0.1, 0.2)

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2


def net_input(frames_rgb: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 **RGB** frames -> (N, 3, H, W) float32 minus (104, 117, 123) per R, G, B.

    Upstream reads BGR frames and flips them to RGB first; our frame packs are RGB already.
    """
    x = torch.as_tensor(frames_rgb, device=device)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) frames, got {tuple(x.shape)}")
    mean = torch.tensor(MEAN_RGB, dtype=torch.float32, device=x.device)
    return (x.to(torch.float32) - mean).permute(0, 3, 1, 2).contiguous()


def decode_level(cls: torch.Tensor, reg: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One level's (boxes (N, h*w, 4) x1y1x2y2, scores (N, h*w)), float32, positions in row-major order."""
    n, _, h, w = cls.shape
    scores = torch.softmax(cls.float(), dim=1)[:, 1].reshape(n, h * w)
    loc = reg.float().permute(0, 2, 3, 1).reshape(n, h * w, 4)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=cls.device), torch.arange(w, device=cls.device), indexing="ij"
    )
    centre = torch.stack([stride / 2 + xs * stride, stride / 2 + ys * stride], dim=-1).reshape(1, h * w, 2)
    centre = centre.to(torch.float32)
    size = float(stride * 4)
    xy = centre + loc[..., :2] * VARIANCES[0] * size
    wh = size * torch.exp(loc[..., 2:] * VARIANCES[1])
    x1y1 = xy - wh / 2
    return torch.cat([x1y1, x1y1 + wh], dim=-1), scores


def decode_all(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """All levels: boxes (N, P, 4) and scores (N, P), levels in order (P = sum of h*w)."""
    boxes, scores = [], []
    for i, stride in enumerate(STRIDES):
        b, s = decode_level(outputs[2 * i], outputs[2 * i + 1], stride)
        boxes.append(b)
        scores.append(s)
    return torch.cat(boxes, dim=1), torch.cat(scores, dim=1)


def detect_top(boxes: torch.Tensor, scores: torch.Tensor) -> list[Rect | None]:
    """Per image the detection upstream returns: the top-scoring box if its score > 0.5, else None."""
    p = scores.shape[1]
    flipped = torch.flip(scores, dims=[1])  # argmax returns the first max: flip to get the last
    idx = (p - 1 - torch.argmax(flipped, dim=1)).cpu().numpy()
    best = scores.gather(1, torch.as_tensor(idx, device=scores.device)[:, None])[:, 0].cpu().numpy()
    chosen = boxes[torch.arange(len(idx), device=boxes.device), torch.as_tensor(idx, device=boxes.device)]
    chosen = chosen.cpu().numpy()
    out: list[Rect | None] = []
    for score, box in zip(best, chosen, strict=True):
        out.append(to_rect(box) if score > FACE_SCORE else None)
    return out


def to_rect(box: np.ndarray) -> Rect:
    """Clip below at 0, truncate to int (upstream `np.clip(d, 0, None)` then `int()`)."""
    clipped = np.clip(np.asarray(box[:4], dtype=np.float64), 0, None)
    x1, y1, x2, y2 = (int(v) for v in clipped)
    return x1, y1, x2, y2


def nms(dets: np.ndarray, thresh: float = NMS_IOU) -> list[int]:
    """Greedy NMS over (K, 5) x1,y1,x2,y2,score rows, "+1" pixel areas; indices kept, best first."""
    if len(dets) == 0:
        return []
    x1, y1, x2, y2, score = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(score, kind="stable")[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / (areas[i] + areas[rest] - w * h)
        order = rest[overlap <= thresh]
    return keep


def detections(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The full upstream list for one image: candidates > 0.05 -> NMS 0.3 -> scores > 0.5, (K, 5)."""
    mask = scores > CANDIDATE_SCORE
    dets = np.concatenate([boxes[mask], scores[mask, None]], axis=1).astype(np.float32)
    kept = dets[nms(dets)] if len(dets) else dets
    return kept[kept[:, 4] > FACE_SCORE]


@torch.inference_mode()
def detect_batch(net: torch.nn.Module, frames_rgb: np.ndarray, device: torch.device) -> list[Rect | None]:
    """Upstream `get_detections_for_batch` on (N, H, W, 3) uint8 RGB frames: one rect or None each."""
    outputs = net(net_input(frames_rgb, device))
    boxes, scores = decode_all(outputs)
    return detect_top(boxes, scores)
