"""FOMM inference semantics around the nets: globals, keypoint normalisation, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import img_as_ubyte
from skimage.transform import resize

from lihq.errors import InvalidInput
from services.fomm import keypoints as motion
from services.fomm.keypoints import Mode, MotionGlobals
from services.fomm.nets import Keypoints
from services.fomm.runner import aligned_blocks
from tests.reference import needs
from tests.services.fomm.conftest import VECTORS


def _globals(**kw) -> MotionGlobals:
    base = dict(
        source_value=np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], np.float32),
        source_jacobian=np.tile(np.eye(2, dtype=np.float32), (1, 3, 1, 1)),
        initial_value=np.array([[[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]], np.float32),
        initial_jacobian=np.tile(2 * np.eye(2, dtype=np.float32), (1, 3, 1, 1)),
        source_hull_area=0.5,
        initial_hull_area=2.0,
        initial_frame=7,
        model_id="synthetic:1",
        source_digest="ab" * 32,
    )
    base.update(kw)
    return MotionGlobals(**base)


def test_globals_round_trip_deterministic_bytes():
    g = _globals()
    data = g.to_bytes()
    assert data == _globals().to_bytes()  # fixed zip timestamps: same globals, same object
    back = MotionGlobals.from_bytes(data)
    assert back.model_id == "synthetic:1" and back.initial_frame == 7
    assert np.array_equal(back.initial_jacobian, g.initial_jacobian)
    assert back.adapt_movement_scale == pytest.approx(0.5)


def test_globals_without_jacobians_and_garbage():
    g = _globals(source_jacobian=None, initial_jacobian=None)
    assert MotionGlobals.from_bytes(g.to_bytes()).source_jacobian is None
    with pytest.raises(InvalidInput, match="not a FOMM globals"):
        MotionGlobals.from_bytes(b"not an npz")


def test_relative_normalisation_as_upstream():
    g = _globals()
    ks, k0 = g.keypoints(torch.device("cpu"))
    kd = Keypoints(k0.value + torch.tensor([0.2, -0.1]), k0.jacobian * torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    out = motion.normalize(kd, ks, k0, Mode.RELATIVE, 0.5)
    assert torch.allclose(out.value, ks.value + 0.5 * torch.tensor([0.2, -0.1]))
    want_j = kd.jacobian @ torch.inverse(k0.jacobian) @ ks.jacobian
    assert torch.allclose(out.jacobian, want_j)
    assert motion.normalize(kd, ks, k0, Mode.ABSOLUTE, 0.5) is kd


def test_movement_scale_and_degenerate_hull():
    assert motion.movement_scale(_globals(), True) == pytest.approx(0.5)
    assert motion.movement_scale(_globals(), False) == 1.0
    line = np.array([[[0, 0], [1, 1], [2, 2]]], np.float32)
    g = motion.make_globals(Keypoints(torch.from_numpy(line)), Keypoints(torch.from_numpy(line)), 0, "m", "d")
    assert np.isnan(g.source_hull_area)
    with pytest.raises(InvalidInput, match="degenerate"):
        motion.movement_scale(g, True)
    assert motion.movement_scale(g, False) == 1.0


def test_hull_area_is_scipys_volume():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], np.float32)
    assert motion.hull_area(sq) == pytest.approx(1.0)


@needs("fomm/vectors/inputs.npz")
def test_model_input_at_256_is_demo_resize_bitwise():
    with np.load(VECTORS / "inputs.npz") as z:
        frame = z["source_u8"]
    ours = motion.to_model_input(frame[None], 256)[0].permute(1, 2, 0).numpy()
    demo = resize(frame, (256, 256))[..., :3].astype(np.float32)
    assert np.array_equal(ours, demo)
    every_value = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
    got = motion.to_model_input(every_value, 16).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, (every_value.astype(np.float64) / 255.0).astype(np.float32))


@needs("fomm/vectors/resize.npz")
def test_other_sizes_resize_as_demo():
    with np.load(VECTORS / "resize.npz") as z:
        src, want = z["input_u8"], z["output_f64"]
    assert np.abs(motion.resize_like_demo(src, 256) - want).max() <= 1e-6
    x = motion.to_model_input(src[None], 256)
    assert x.shape == (1, 3, 256, 256) and np.abs(x[0].permute(1, 2, 0).numpy() - want).max() <= 1e-6


def test_to_uint8_rounds_as_img_as_ubyte():
    rng = np.random.default_rng(0)
    pred = rng.random((2, 8, 8, 3), dtype=np.float32)
    pred[0, 0, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # ties
    ours = motion.to_uint8(torch.from_numpy(pred).permute(0, 3, 1, 2)).numpy()
    assert np.array_equal(ours, img_as_ubyte(pred))


def test_find_best_frame_with_a_pluggable_landmark_function():
    base = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 2]], np.float64)
    table = {1: base * 3 + 7, 2: base + [[0, 0], [0, 0], [0, 0], [0, 0], [0, 5]], 3: None}

    def landmarks(img: np.ndarray):
        v = int(img[0, 0, 0])
        return base if v == 0 else table[v]

    frames = [np.full((4, 4, 3), v, np.uint8) for v in (2, 1, 3)]
    source = np.zeros((4, 4, 3), np.uint8)
    assert motion.find_best_frame(source, frames, landmarks) == 1  # same shape, scaled and moved
    with pytest.raises(InvalidInput, match="any driving frame"):
        motion.find_best_frame(source, frames[2:], landmarks)


def test_aligned_blocks_break_on_timeline_multiples():
    assert list(aligned_blocks(0, 5, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert list(aligned_blocks(3, 5, 2)) == [(0, 1), (1, 3), (3, 5)]
    assert list(aligned_blocks(3, 5, 2, aligned=False)) == [(0, 2), (2, 4), (4, 5)]
