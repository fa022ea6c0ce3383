"""Face windows, paste-back, pads, smoothing and the clip's face track (no network runs here)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lihq.errors import InvalidInput
from services.wav2lip.faces import (
    Pads,
    crop_faces,
    face_windows,
    pad_box,
    paste_faces,
    prediction_u8,
    smooth_boxes,
)
from services.wav2lip.objects import FaceTrack
from services.wav2lip.track import build_track, fixed_track, frame_ranges
from tests.services.wav2lip.conftest import W2L_VECTORS, needs_reference


@needs_reference
def test_windows_predictions_and_paste_match_upstream() -> None:
    faces_ref, net_ref, paste_ref = (np.load(W2L_VECTORS / f) for f in ("faces.npz", "net.npz", "paste.npz"))
    rgb = faces_ref["frames_bgr_u8"][..., ::-1].copy()
    boxes = faces_ref["boxes_y1y2x1x2"]
    faces = crop_faces(rgb, boxes)
    assert np.array_equal(faces[..., ::-1], faces_ref["faces96_bgr_u8"])
    assert torch.equal(face_windows(faces), torch.from_numpy(net_ref["face_windows"]))
    pred = prediction_u8(torch.from_numpy(net_ref["output"]))
    assert np.array_equal(pred[..., ::-1], paste_ref["pred_bgr_u8"])
    assert np.array_equal(paste_faces(rgb, pred, boxes)[..., ::-1], paste_ref["pasted_frames_bgr_u8"])


def test_windows_mask_the_lower_half_and_swap_to_bgr() -> None:
    face = np.zeros((1, 96, 96, 3), np.uint8)
    face[..., 0] = 255  # pure red in RGB
    w = face_windows(face)
    assert w.shape == (1, 6, 96, 96) and w.dtype == torch.float32
    assert float(w[0, 2, :48].min()) == 1.0 and float(w[0, 2, 48:].max()) == 0.0  # BGR: red is channel 2
    assert float(w[0, 5].min()) == 1.0 and float(w[0, :2].max()) == 0.0


def test_prediction_truncates() -> None:
    p = torch.full((1, 3, 96, 96), 0.999)  # 254.745 -> 254, not 255
    assert prediction_u8(p).max() == 254


@needs_reference
def test_smoothing_cases() -> None:
    cases = json.loads((W2L_VECTORS / "preprocess_cases.json").read_text())["smoothing_cases"]
    for c in cases:
        assert smooth_boxes(np.array(c["raw_x1y1x2y2"]), c["T"]).tolist() == c["smoothed"]


def test_smoothing_short_clips() -> None:
    one = np.array([[10, 20, 30, 41]])
    assert smooth_boxes(one).tolist() == one.tolist()
    two = np.array([[10, 20, 30, 40], [13, 20, 30, 40]])
    # window = boxes[-3:] = both rows; row 0 -> 11.5 -> 11, then row 1 = mean(11, 13) = 12
    assert smooth_boxes(two)[:, 0].tolist() == [11, 12]
    assert two[0, 0] == 10  # the input is not modified


def test_pads_clip_to_the_frame() -> None:
    assert Pads().as_tuple() == (0, 20, 0, 0)
    assert pad_box((5, 6, 50, 90), Pads(top=10, bottom=20, left=10, right=10), 100, 55) == [0, 0, 55, 100]


def _rect(i: int) -> tuple[int, int, int, int]:
    return (20 + i, 30, 120 + i, 140)


def test_track_pads_smooths_and_reorders() -> None:
    rects = [_rect(i) for i in range(7)]
    track = build_track(rects, 256, 256, Pads(0, 20, 0, 0), start=50)
    padded = np.array([[x1, y1, x2, min(256, y2 + 20)] for x1, y1, x2, y2 in rects])
    x1, y1, x2, y2 = smooth_boxes(padded).T
    assert np.array_equal(track.boxes, np.stack([y1, y2, x1, x2], 1))
    assert track.detected.all() and track.start == 50 and track.pads == (0, 20, 0, 0)
    assert np.array_equal(track.boxes_for(52, 2), track.boxes[2:4])
    with pytest.raises(InvalidInput, match=r"outside the face track, which covers \[50, 57\)"):
        track.boxes_for(55, 5)
    raw = build_track(rects, 256, 256, smooth=False)
    assert raw.boxes[3].tolist() == [30, 160, 23, 123]


def test_no_face_names_the_frames() -> None:
    rects = [_rect(0), _rect(1), None, None, _rect(4), _rect(5), _rect(6), None]
    with pytest.raises(InvalidInput, match=r"no face found in frames 12-13, 17 of \[10, 18\)") as ei:
        build_track(rects, 256, 256, start=10)
    assert "carry_last_box" in str(ei.value)
    carried = build_track(rects, 256, 256, carry_last_box=True, smooth=False, start=10)
    assert carried.detected.tolist() == [True, True, False, False, True, True, True, False]
    assert carried.boxes[2].tolist() == carried.boxes[1].tolist()
    assert carried.boxes[7].tolist() == carried.boxes[6].tolist()
    leading = build_track([None, _rect(1), _rect(2)], 256, 256, carry_last_box=True, smooth=False)
    assert leading.boxes[0].tolist() == leading.boxes[1].tolist()
    with pytest.raises(InvalidInput, match="no frame of the clip has a usable face"):
        build_track([None, None], 256, 256, carry_last_box=True)


def test_a_box_outside_the_frame_counts_as_no_face() -> None:
    with pytest.raises(InvalidInput, match="frames 1 of"):
        build_track([_rect(0), (300, 10, 400, 90), _rect(2)], 256, 256)


def test_fixed_box_track() -> None:
    track = fixed_track([10, 100, 20, 90], 4, 128, 128, start=8)
    assert track.boxes.tolist() == [[10, 100, 20, 90]] * 4 and track.source == "fixed_box"
    with pytest.raises(InvalidInput, match="0 <= y1 < y2 <= 128"):
        fixed_track([10, 200, 20, 90], 4, 128, 128)


def test_track_roundtrip() -> None:
    track = build_track([_rect(i) for i in range(3)], 200, 180, Pads(1, 2, 3, 4), start=5)
    again = FaceTrack.from_bytes(track.to_bytes())
    assert np.array_equal(again.boxes, track.boxes) and again.pads == (1, 2, 3, 4)
    assert (again.height, again.width, again.start, again.source) == (200, 180, 5, "s3fd")
    with pytest.raises(InvalidInput, match="track"):
        FaceTrack.from_bytes(b"PK\x03\x04 nonsense")


def test_frame_ranges_text() -> None:
    assert frame_ranges([0, 1, 2, 5, 7, 8], offset=100) == "100-102, 105, 107-108"
    assert frame_ranges(list(range(0, 40, 2)), limit=2).endswith("(18 more ranges)")
