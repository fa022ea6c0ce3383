"""S3FD post-processing: prior decoding, NMS, the top-box shortcut, and the net on frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from services.wav2lip.detect import decode_all, decode_level, detect_top, detections, net_input, nms, to_rect


def test_net_input_is_rgb_minus_means() -> None:
    frames = np.zeros((1, 2, 3, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 200, 100, 50
    x = net_input(frames)
    assert x.shape == (1, 3, 2, 3)
    assert x[0, :, 0, 0].tolist() == [200 - 104, 100 - 117, 50 - 123]


def test_decode_one_position() -> None:
    cls = torch.zeros(1, 2, 2, 3)
    cls[0, 1, 1, 2] = math.log(3.0)  # softmax -> 0.75
    reg = torch.zeros(1, 4, 2, 3)
    reg[0, :, 1, 2] = torch.tensor([1.0, -1.0, 0.0, math.log(2.0) / 0.2])
    boxes, scores = decode_level(cls, reg, stride=8)
    i = 1 * 3 + 2  # row-major position (h=1, w=2)
    assert scores[0, i].item() == pytest.approx(0.75)
    # prior centre (4 + 2*8, 4 + 1*8) = (20, 12), size 32; centre += (0.1*32, -0.1*32); w = 32, h = 64
    assert boxes[0, i].tolist() == pytest.approx([23.2 - 16, 8.8 - 32, 23.2 + 16, 8.8 + 32], abs=1e-4)


def test_nms_uses_plus_one_areas() -> None:
    dets = np.array(
        [[0, 0, 9, 9, 0.9], [5, 0, 14, 9, 0.8], [30, 30, 40, 40, 0.7], [0, 0, 9, 9, 0.95]], np.float32
    )
    # box 1 vs box 3: overlap 5x10 = 50 over 100 + 100 - 50 -> 0.333 > 0.3: suppressed; box 0 = box 3
    assert nms(dets, 0.3) == [3, 2]
    assert nms(dets, 0.34) == [3, 1, 2]
    assert nms(np.zeros((0, 5), np.float32)) == []


def test_top_box_equals_the_full_nms_path() -> None:
    g = torch.Generator().manual_seed(0)
    outs = []
    for h, w in ((16, 20), (8, 10), (4, 5), (6, 7), (3, 4), (2, 2)):
        outs += [torch.randn(5, 2, h, w, generator=g) * 1.5, torch.randn(5, 4, h, w, generator=g)]
    outs[0][3] -= 10  # image 3 has no face-like score at all on level 1 ...
    boxes, scores = decode_all(outs)
    scores[3] = torch.clamp(scores[3], max=0.4)  # ... nor anywhere: below the 0.5 threshold
    top = detect_top(boxes, scores)
    for b in range(5):
        kept = detections(boxes[b].numpy(), scores[b].numpy())
        want = to_rect(kept[0]) if len(kept) else None
        assert top[b] == want
    assert top[3] is None


def test_ties_take_the_last_candidate() -> None:
    boxes = torch.tensor([[[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.9, 0.1]])
    assert detect_top(boxes, scores) == [(5, 5, 20, 20)]


def test_to_rect_clips_below_and_truncates() -> None:
    assert to_rect(np.array([-3.7, 2.9, 300.99, 17.5, 0.9])) == (0, 2, 300, 17)
