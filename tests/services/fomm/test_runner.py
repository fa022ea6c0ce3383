"""FommRunner: per-render globals, segments alone == inside the clip, batching, input checks.

The bit-exactness and batching tests use the real vox-256 nets (synthetic weights, 256², 4 frames);
the rest run a tiny config loaded through the same FOMM checkpoint loader (64², milliseconds).
"""

from __future__ import annotations

import numpy as np
import pytest

from lihq.errors import FailedPrecondition, InvalidInput
from services.fomm.keypoints import Mode
from services.fomm.runner import AnimateSpec, FommRunner, FommRunnerConfig


@pytest.fixture(scope="module")
def vox2(vox_path) -> FommRunner:
    return FommRunner(FommRunnerConfig(device="cpu", batch_size=2), paths={"vox": vox_path})


@pytest.fixture(scope="module")
def tiny_runner(tiny_cfg, tiny_path) -> FommRunner:
    return FommRunner(FommRunnerConfig(device="cpu", batch_size=2, arch=tiny_cfg), paths={"vox": tiny_path})


@pytest.fixture(scope="module")
def clip(vectors) -> tuple[np.ndarray, np.ndarray]:
    return vectors["source_u8"], vectors["driving_u8"]


@pytest.fixture(scope="module")
def small_clip() -> tuple[np.ndarray, np.ndarray]:
    """A 64² source and 5 driving frames: another image shifted by k pixels in frame k."""
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    other = np.ascontiguousarray(src.transpose(1, 0, 2)[::-1])
    return src, np.stack([np.roll(other, k, axis=1) for k in range(5)])


@pytest.fixture(scope="module")
def vox_globals(vox2, clip):
    return vox2.prepare(*clip)


@pytest.fixture(scope="module")
def whole2(vox2, clip, vox_globals) -> np.ndarray:
    """Frames 0 and 1 rendered as one clip (one batch of 2)."""
    src, drv = clip
    return vox2.animate_float(src, drv[:2], vox_globals)


def test_segment_alone_equals_the_whole_clip_bitwise(vox2, clip, vox_globals, whole2):
    """Globals from frame 0 once; frame 1 then rendered alone as the segment [1, 2): it meets the
    nets in another batch (padded at the front) and must come out bit-identical."""
    src, drv = clip
    alone = vox2.animate_float(src, drv[1:2], vox_globals, AnimateSpec(start=1))
    assert np.array_equal(alone[0], whole2[1])


def test_uint8_frames_round_the_prediction(tiny_runner, small_clip):
    src, drv = small_clip
    g = tiny_runner.prepare(src, drv)
    pred = tiny_runner.animate_float(src, drv, g)
    frames = tiny_runner.animate(src, drv, g)
    assert frames.dtype == np.uint8 and np.array_equal(frames, np.rint(pred * 255).astype(np.uint8))


def test_batched_equals_per_frame_within_tolerance(vox_path, clip, vox_globals, whole2):
    """Frame 1 alone (batch of 1, as upstream's loop) vs inside a batch of 2: BatchNorm in eval mode
    makes the frames independent; only the kernels' summation order may differ."""
    src, drv = clip
    one = FommRunner(FommRunnerConfig(device="cpu", batch_size=1), paths={"vox": vox_path})
    a = one.animate_float(src, drv[1:2], vox_globals, AnimateSpec(start=1))
    assert np.abs(a[0] - whole2[1]).max() <= 1e-5


def test_prepare_records_the_initial_frame_on_the_timeline(tiny_runner, small_clip):
    src, drv = small_clip
    g0 = tiny_runner.prepare(src, drv, start=50)
    g2 = tiny_runner.prepare(src, drv, initial_index=2, start=50)
    assert (g0.initial_frame, g2.initial_frame) == (50, 52)
    assert not np.array_equal(g0.initial_value, g2.initial_value)
    assert np.array_equal(g0.source_value, g2.source_value)
    with pytest.raises(InvalidInput, match="initial_frame 5"):
        tiny_runner.prepare(src, drv, initial_index=5)


def test_relative_absolute_and_scale_change_the_result(tiny_runner, small_clip):
    src, drv = small_clip
    g = tiny_runner.prepare(src, drv)
    rel = tiny_runner.animate_float(src, drv, g, AnimateSpec(Mode.RELATIVE, True))
    rel1 = tiny_runner.animate_float(src, drv, g, AnimateSpec(Mode.RELATIVE, False))
    ab = tiny_runner.animate_float(src, drv, g, AnimateSpec(Mode.ABSOLUTE, True))
    assert not np.array_equal(rel, ab) and not np.array_equal(rel[1:], rel1[1:])
    assert np.array_equal(ab, tiny_runner.animate_float(src, drv, g, AnimateSpec(Mode.ABSOLUTE, False)))


def test_globals_must_match_source_and_model(tiny_runner, small_clip):
    src, drv = small_clip
    g = tiny_runner.prepare(src, drv)
    with pytest.raises(InvalidInput, match="another source"):
        tiny_runner.animate(255 - src, drv, g)
    from dataclasses import replace

    with pytest.raises(InvalidInput, match="prepared with model"):
        tiny_runner.animate(src, drv, replace(g, model_id="sha256:other"))


def test_frame_size_and_counts_are_checked(tiny_runner, tiny_cfg, tiny_path, small_clip):
    src, drv = small_clip
    g = tiny_runner.prepare(src, drv)
    with pytest.raises(InvalidInput, match="frames are 32x48; FOMM vox-256 takes 64x64"):
        tiny_runner.animate(src, np.zeros((1, 48, 32, 3), np.uint8), g)
    with pytest.raises(InvalidInput, match="no frames"):
        tiny_runner.animate(src, drv[:0], g)
    resizing = FommRunner(
        FommRunnerConfig(device="cpu", arch=tiny_cfg, resize_inputs=True, max_frames=3),
        paths={"vox": tiny_path},
    )
    out = resizing.animate(src, np.zeros((2, 48, 32, 3), np.uint8), g)
    assert out.shape == (2, 64, 64, 3)
    with pytest.raises(InvalidInput, match="at most 3"):
        resizing.animate(src, drv, g)


def test_find_best_frame_needs_a_landmark_function(tiny_runner, tiny_cfg, tiny_path, small_clip):
    src, drv = small_clip
    with pytest.raises(FailedPrecondition, match="initial_frame instead"):
        tiny_runner.prepare(src, drv, find_best=True)
    base = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float64)

    def landmarks(img):  # the source's landmarks are `base`; frame 3's too, the others differ
        if np.array_equal(img, src):
            return base
        k = next(i for i in range(5) if np.array_equal(img, drv[i]))
        return base + (0 if k == 3 else [[0, 0], [0, 0], [0, 0], [0, 1 + k]])

    runner = FommRunner(
        FommRunnerConfig(device="cpu", arch=tiny_cfg), paths={"vox": tiny_path}, landmarks=landmarks
    )
    assert runner.prepare(src, drv, find_best=True, start=10).initial_frame == 13


def test_bf16_autocast_runs_and_stays_close(tiny_runner, small_clip):
    src, drv = small_clip
    g = tiny_runner.prepare(src, drv)
    a = tiny_runner.animate_float(src, drv[:2], g)
    b = tiny_runner.animate_float(src, drv[:2], g, AnimateSpec(precision="bf16"))
    assert np.abs(a - b).max() < 0.05
