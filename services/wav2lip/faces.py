"""Face boxes, 96x96 face windows and paste-back, as upstream Wav2Lip's `inference.py` does them.

Upstream: Rudrabha/Wav2Lip @ 5c90fa9b `inference.py` (`face_detect`, `get_smoothened_boxes`,
`datagen`, the paste loop). Colour: upstream reads frames with OpenCV (BGR) and the network is
trained on BGR; our frame packs are RGB. Crops and resizes work per channel, so they run on the RGB
frames unchanged; the flip to BGR happens when the network input is built (`face_windows`) and the
flip back when the prediction is converted (`prediction_u8`).

Box orders: the detector gives (x1, y1, x2, y2); a track stores upstream's crop order
(y1, y2, x1, x2), the rows and columns `frame[y1:y2, x1:x2]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from lihq.errors import InvalidInput

IMG_SIZE = 96
SMOOTH_T = 5
_LUT_255 = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)  # float32(v / 255.) as upstream


@dataclass(frozen=True)
class Pads:
    """Pixels added around the detected face: (top, bottom, left, right). LIHQ's default: bottom 20."""

    top: int = 0
    bottom: int = 20
    left: int = 0
    right: int = 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.top, self.bottom, self.left, self.right)


DEFAULT_PADS = Pads()


def pad_box(rect: tuple[int, int, int, int], pads: Pads, height: int, width: int) -> list[int]:
    """(x1, y1, x2, y2) detection -> padded (x1, y1, x2, y2) clipped to the frame (upstream order)."""
    x1, y1, x2, y2 = rect
    return [
        max(0, x1 - pads.left),
        max(0, y1 - pads.top),
        min(width, x2 + pads.right),
        min(height, y2 + pads.bottom),
    ]


def smooth_boxes(boxes: np.ndarray, t: int = SMOOTH_T) -> np.ndarray:
    """Upstream `get_smoothened_boxes(boxes, T)` on a copy of (N, 4) int64 boxes.

    Row i becomes the mean of rows [i, i + T) — a forward window over not-yet-smoothed rows — except
    when that runs past the end, where the window is the last T rows `boxes[N - T:]` and so includes
    rows already smoothed in place. With N < T the start `N - T` is negative, so Python's slicing
    takes the last T - N rows when T - N < N, else all N rows. Means are float64, truncated back to
    int64 on assignment.
    """
    out = np.array(boxes, dtype=np.int64, copy=True)
    n = len(out)
    for i in range(n):
        window = out[n - t :] if i + t > n else out[i : i + t]
        out[i] = np.mean(window, axis=0)
    return out


def crop_faces(frames: np.ndarray, boxes_y1y2x1x2: np.ndarray, size: int = IMG_SIZE) -> np.ndarray:
    """(N, H, W, 3) uint8 frames + (N, 4) boxes -> (N, size, size, 3) uint8 crops, same colour order.

    `cv2.resize(frame[y1:y2, x1:x2], (size, size))` with OpenCV's default INTER_LINEAR, as upstream.
    """
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, (frame, (y1, y2, x1, x2)) in enumerate(zip(frames, boxes_y1y2x1x2, strict=True)):
        crop = frame[y1:y2, x1:x2]
        if crop.shape[0] < 1 or crop.shape[1] < 1:
            raise InvalidInput(f"face box {(y1, y2, x1, x2)} (y1, y2, x1, x2) is empty inside the frame")
        out[i] = cv2.resize(np.ascontiguousarray(crop), (size, size))
    return out


def face_windows(faces: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, 96, 96, 3) uint8 **RGB** faces -> (N, 6, 96, 96) float32 **BGR** network input in [0, 1].

    Channels 0-2: the face with rows 48..95 (the lower half) set to 0; channels 3-5: the unmasked face.
    Values are `float32(v / 255.)` exactly as upstream (float64 division, then float32). Runs on the
    device of `faces` when given a tensor.
    """
    x = torch.as_tensor(faces)
    lut = torch.as_tensor(_LUT_255, device=x.device)
    ref = lut[x.long()].flip(-1).permute(0, 3, 1, 2)  # (N, 3, H, W) BGR
    masked = ref.clone()
    masked[:, :, ref.shape[2] // 2 :] = 0
    return torch.cat([masked, ref], dim=1).contiguous()


def prediction_u8(pred: torch.Tensor) -> np.ndarray:
    """(N, 3, 96, 96) BGR float network output -> (N, 96, 96, 3) uint8 **RGB**.

    `uint8(float32(p) * 255.)` truncates, as upstream's `.astype(np.uint8)`; values outside [0, 255]
    cannot occur after the sigmoid.
    """
    scaled = pred.float() * 255.0
    return scaled.to(torch.uint8).flip(1).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def paste_faces(frames: np.ndarray, preds: np.ndarray, boxes_y1y2x1x2: np.ndarray) -> np.ndarray:
    """Resize each (96, 96, 3) prediction to its box (INTER_LINEAR) and write it into a copy of the frame.

    Colour orders of `frames` and `preds` must agree (both RGB here).
    """
    out = np.array(frames, copy=True)
    for frame, pred, (y1, y2, x1, x2) in zip(out, preds, boxes_y1y2x1x2, strict=True):
        frame[y1:y2, x1:x2] = cv2.resize(pred, (int(x2 - x1), int(y2 - y1)))
    return out
