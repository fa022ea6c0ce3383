"""Wav2LipRunner on arrays: segment independence (bit-exact on CPU), timeline checks, weights errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lihq.errors import InvalidInput, WeightsMissing
from services.wav2lip.audio import mel_chunk_starts
from services.wav2lip.objects import MelObject
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.track import fixed_track


@pytest.fixture(scope="module")
def runner(weights_dir: Path) -> Wav2LipRunner:
    return Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", batch_size=4, weights_dir=weights_dir))


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, MelObject]:
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (6, 72, 64, 3), dtype=np.uint8)
    mel = rng.uniform(-4, 2, (80, 40)).astype(np.float32)
    return frames, MelObject(mel=mel, starts=mel_chunk_starts(40, 25.0), fps=25.0)


def test_segments_rendered_alone_equal_the_whole_clip(runner: Wav2LipRunner, clip) -> None:
    frames, mel = clip
    track = fixed_track([8, 70, 4, 60], 6, 72, 64)
    whole = runner.lip_sync(frames, 0, 25.0, mel, track)  # batches of 4 + 2
    parts = [runner.lip_sync(frames[s:e], s, 25.0, mel, track) for s, e in ((0, 1), (1, 4), (4, 6))]
    assert np.array_equal(np.concatenate(parts), whole)
    changed = whole != frames
    assert changed[:, 8:70, 4:60].any() and not changed[:, :8].any() and not changed[:, :, 60:].any()


def test_frames_past_the_last_chunk_reuse_it(runner: Wav2LipRunner, clip) -> None:
    frames, mel = clip
    short = MelObject(mel=mel.mel, starts=mel.starts[:2], fps=25.0)  # 2 chunks for 3 frames
    track = fixed_track([8, 70, 4, 60], 3, 72, 64)
    out = runner.lip_sync(np.repeat(frames[:1], 3, axis=0), 0, 25.0, short, track)
    assert np.array_equal(out[1], out[2]) and not np.array_equal(out[0], out[1])


def test_timeline_checks(runner: Wav2LipRunner, clip) -> None:
    frames, mel = clip
    track = fixed_track([8, 70, 4, 60], 6, 72, 64)
    with pytest.raises(InvalidInput, match="30.0 fps but the mel was prepared for 25.0"):
        runner.lip_sync(frames, 0, 30.0, mel, track)
    with pytest.raises(InvalidInput, match="64x72"):
        runner.lip_sync(frames, 0, 25.0, mel, fixed_track([8, 70, 4, 60], 6, 80, 64))
    with pytest.raises(InvalidInput, match="outside the face track"):
        runner.lip_sync(frames, 3, 25.0, mel, track)
    with pytest.raises(InvalidInput, match="checkpoint 'gfpgan'"):
        runner.lip_sync(frames, 0, 25.0, mel, track, checkpoint="gfpgan")
    with pytest.raises(InvalidInput, match="uint8"):
        runner.lip_sync(frames.astype(np.float32), 0, 25.0, mel, track)


def test_missing_weights_name_the_fetch_command(runner: Wav2LipRunner, tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="lihq weights fetch wav2lip`"):
        runner.weights_path("wav2lip")  # only wav2lip_gan and s3fd were synthesized
    explicit = Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", s3fd_path=str(tmp_path / "nope.pth")))
    with pytest.raises(WeightsMissing, match="nope.pth"):
        explicit.detect(np.zeros((1, 32, 32, 3), np.uint8))


def test_model_ids_are_synthetic(runner: Wav2LipRunner) -> None:
    assert runner.model_id("wav2lip_gan") == "synthetic:1"
    assert runner.detector_id() == "synthetic:1"


def test_s3fd_sees_large_frames_scaled_down_and_boxes_come_back_full_size(monkeypatch, tmp_path) -> None:
    import services.wav2lip.runner as runner_mod

    seen: list[tuple[int, ...]] = []

    def fake_detect_batch(net, frames, device):
        seen.append(frames.shape)
        return [(72, 36, 144, 108)] * len(frames)  # a box in the scaled frame's pixels

    monkeypatch.setattr(runner_mod, "detect_batch", fake_detect_batch)
    r = Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", weights_dir=tmp_path, detect_max_side=720))
    monkeypatch.setattr(r, "_net", lambda name: None)
    big = np.zeros((2, 1080, 1920, 3), np.uint8)
    assert r.detect(big) == [(192, 96, 384, 288)] * 2  # x 1920/720: back in 1080p pixels
    assert seen == [(2, 405, 720, 3)]
    seen.clear()
    small = np.zeros((1, 256, 256, 3), np.uint8)
    assert r.detect(small) == [(72, 36, 144, 108)] and seen == [(1, 256, 256, 3)]  # never scaled up
    full = Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", weights_dir=tmp_path, detect_max_side=0))
    monkeypatch.setattr(full, "_net", lambda name: None)
    seen.clear()
    full.detect(big[:1])
    assert seen == [(1, 1080, 1920, 3)]
    with pytest.raises(InvalidInput, match="detect_max_side"):
        Wav2LipRunnerConfig(detect_max_side=-1)
