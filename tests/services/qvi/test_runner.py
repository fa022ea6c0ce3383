"""QVIRunner: the output index rule, segments == whole clip, bad inputs, missing weights."""

from __future__ import annotations

import numpy as np
import pytest

from lihq.errors import InvalidInput, WeightsMissing
from services.qvi.runner import SegmentPlan, model_path, plan_segment, time_steps
from tests.services.qvi.conftest import moving_clip


def segment_requests(n: int, bounds: list[tuple[int, int]], k: int) -> list[SegmentPlan]:
    """Plans with exactly the context the index rule asks for."""
    return [plan_segment(s, e, 1 if s > 0 else 0, min(2, n - e), k) for s, e in bounds]


@pytest.mark.parametrize(
    "n, k, bounds",
    [
        (6, 2, [(0, 2), (2, 3), (3, 5), (5, 6)]),  # 1-frame segments in the middle and at the end
        (4, 3, [(0, 1), (1, 4)]),  # the last segment holds the clip's last frame
    ],
)
def test_segments_concatenate_to_the_whole_clip(qvi_runner, n, k, bounds):
    clip = moving_clip(n, seed=n + k)
    whole = qvi_runner.interpolate_clip(clip, k)
    assert whole.shape == ((n - 1) * (k + 1) + 1, 64, 64, 3)
    assert np.array_equal(whole[:: k + 1], clip)  # originals pass through unchanged
    parts, expect_start = [], 0
    for plan in segment_requests(n, bounds, k):
        window = clip[plan.start - plan.context_before : plan.end + plan.context_after]
        out = qvi_runner.interpolate_segment(window, plan)
        assert plan.out_start == expect_start and out.shape[0] == plan.out_count
        expect_start = plan.out_end
        parts.append(out)
    assert expect_start == whole.shape[0]
    assert np.array_equal(np.concatenate(parts), whole)


def test_in_betweens_move_between_their_neighbours(qvi_runner):
    clip = moving_clip(4, seed=1)
    out = qvi_runner.interpolate_clip(clip, 1).astype(np.int32)
    mid = out[3]  # between inputs 1 and 2
    assert not np.array_equal(mid, out[2]) and not np.array_equal(mid, out[4])
    assert np.abs(mid - (out[2] + out[4]) / 2).mean() < 20  # a plausible in-between, not noise


def test_time_steps_follow_upstream():
    assert time_steps(1) == [0.5]
    assert time_steps(3) == [0.25, 0.5, 0.75]
    assert len(time_steps(7)) == 7 and time_steps(7)[-1] == 1.0 / 8 * 7


@pytest.mark.parametrize(
    "args, needle",
    [
        ((0, 5, 0, 0, 0), "k=0"),
        ((0, 5, 0, 0, 8), "k=8"),
        ((3, 3, 1, 2, 1), "start < end"),
        ((3, 6, 0, 2, 1), "context_before=0"),
        ((0, 6, 1, 2, 1), "context_before=1"),
        ((3, 6, 1, 3, 1), "context_after=3"),
        ((0, 1, 0, 0, 1), "holds 1 frame"),
    ],
)
def test_bad_plans(args, needle):
    with pytest.raises(InvalidInput, match=needle):
        plan_segment(*args)


@pytest.mark.parametrize(
    "frames, needle",
    [
        (moving_clip(1), "at least 2 frames"),
        (moving_clip(3, h=16), "must be in"),
        (moving_clip(3).astype(np.float32), "uint8"),
        (moving_clip(3)[..., :2], "RGB"),
    ],
)
def test_bad_frames(qvi_runner, frames, needle):
    with pytest.raises(InvalidInput, match=needle):
        qvi_runner.interpolate_clip(frames, 1)


def test_window_must_match_the_plan(qvi_runner):
    plan = plan_segment(2, 4, 1, 2, 1)
    with pytest.raises(InvalidInput, match="needs 5 frames, got 4"):
        qvi_runner.interpolate_segment(moving_clip(4), plan)


def test_missing_weights_name_the_fetch_command(tmp_path):
    with pytest.raises(WeightsMissing, match="lihq weights fetch qvi"):
        model_path(tmp_path)
