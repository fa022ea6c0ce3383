"""The torch paste-back (for GPUs) stays within 2 levels of upstream's cv2 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.gfpgan.batched import FacePlan, paste_all
from services.gfpgan.detect import align_faces
from services.gfpgan.paste import lanczos4_matrix, paste_frame, paste_frame_torch
from tests.services.gfpgan.fakes import make_frames

TEMPLATE = np.array(
    [[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]]
)


def _faces(n: int, size: int, per_frame: int):
    frames, dets = make_frames(n, size, seed=3, faces_per_frame=per_frame)
    lms = [[d[k, 5:15].reshape(5, 2) for k in range(per_frame)] for d in dets]
    faces, crops = align_faces(frames, lms, TEMPLATE, range(n))
    rng = np.random.default_rng(0)
    restored = np.clip(crops.astype(int) + rng.integers(-30, 30, crops.shape), 0, 255).astype(np.uint8)
    classes = np.zeros((len(faces), 512, 512), np.uint8)
    classes[:, 90:430, 110:410] = rng.integers(1, 14, len(faces))[:, None, None]  # skin, brows, eyes ...
    classes[:, 380:470, 180:340] = 14  # neck: masked out
    return frames, faces, restored, classes


@pytest.mark.parametrize("scale, per_frame", [(1.0, 1), (4.0, 1), (4.0, 2)])
def test_torch_paste_matches_cv2_within_two_levels(scale: float, per_frame: int) -> None:
    frames, faces, restored, classes = _faces(2, 128, per_frame)
    for i in range(len(frames)):
        ks = [k for k, f in enumerate(faces) if f.frame == i]
        args = ([restored[k] for k in ks], [faces[k].affine for k in ks], [classes[k] for k in ks], scale)
        ref = paste_frame(frames[i], *args)
        ours = paste_frame_torch(frames[i], *args, torch.device("cpu"))
        assert ours.shape == ref.shape == (int(128 * scale), int(128 * scale), 3) and ours.dtype == np.uint8
        d = np.abs(ours.astype(int) - ref.astype(int))
        assert d.max() <= 2 and d.mean() < 0.15, (d.max(), d.mean())
        assert np.abs(ref.astype(int) - paste_frame(frames[i], [], [], [], scale).astype(int)).max() > 20


def test_lanczos_matrix_is_cv2_resize() -> None:
    import cv2

    img = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    ref = cv2.resize(img, (224, 160), interpolation=cv2.INTER_LANCZOS4).astype(int)
    t = torch.from_numpy(img).permute(2, 0, 1).float()
    ours = (lanczos4_matrix(40, 160, "cpu") @ t @ lanczos4_matrix(56, 224, "cpu").T).round().clamp(0, 255)
    assert np.abs(ours.permute(1, 2, 0).numpy().astype(int) - ref).max() <= 1


def test_paste_all_routes_to_the_device_path() -> None:
    frames, faces, restored, classes = _faces(2, 64, 1)
    plan = FacePlan(scale=2.0)
    cv = paste_all(frames, range(2), faces, restored, classes, plan, None, 1)
    dev = paste_all(frames, range(2), faces, restored, classes, plan, None, 2, torch.device("cpu"))
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(cv, dev, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(cv, dev, strict=True))  # really the other path
