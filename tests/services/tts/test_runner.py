"""TtsRunner in-process: backend choice, planning, reference-clip checks, synthesis with espeak."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from lihq import media
from lihq.errors import FailedPrecondition, InvalidInput, WeightsMissing
from services.tts import audio
from services.tts.backends import SAMPLE_RATE
from services.tts.runner import ClipLimits, TtsRunner, TtsRunnerConfig, clip_set_id
from tests.mediafiles import espeak_wav


@pytest.fixture
def runner(tmp_path) -> TtsRunner:
    return TtsRunner(
        TtsRunnerConfig(weights_dir=tmp_path / "weights", cache_dir=tmp_path / "cache", max_text_chars=500)
    )


def test_default_backend_is_espeak_without_weights_and_says_why(runner):
    name, note = runner.default_backend()
    assert name == "espeak"
    assert "lihq weights fetch tortoise" in note and "lihq weights fetch bark" in note


def test_missing_weights_name_the_fetch_command(runner):
    with pytest.raises(WeightsMissing, match=r"`lihq weights fetch tortoise`") as ei:
        runner.plan("Hello.", backend="tortoise")
    assert str(runner.cfg.weights_dir / "tortoise") in ei.value.message
    with pytest.raises(WeightsMissing, match=r"`lihq weights fetch bark`"):
        runner.plan("Hello.", backend="bark")


def test_synthesize_in_process_with_workers(runner):
    text = "Sentence one is here. " * 20 + "And a final one."
    one = runner.synthesize(text, workers=1)
    two = runner.synthesize(text, workers=2)
    assert len(one.plan.chunks) >= 2 and np.array_equal(one.audio, two.audio)  # order kept, deterministic
    assert one.plan.options.backend == "espeak" and one.duration_s > 8
    m = one.manifest()
    assert (
        m["backend"] == "espeak"
        and m["sample_rate"] == SAMPLE_RATE
        and len(m["chunks"]) == len(one.plan.chunks)
    )
    assert m["chunks"][1]["offset_s"] >= m["chunks"][0]["duration_s"] + m["chunks"][0]["pause_after_s"] - 1e-6


def test_text_limits(runner):
    with pytest.raises(InvalidInput, match="limit is 500"):
        runner.plan("a" * 501)
    with pytest.raises(InvalidInput, match="empty"):
        runner.plan(" \n\t")


def test_clip_set_ids_are_content_and_order_addressed():
    assert clip_set_id(["a", "b"]) != clip_set_id(["b", "a"])
    assert clip_set_id(["a", "b"]).startswith("clips:") and len(clip_set_id(["a"])) == 6 + 64


def test_only_tortoise_clones(runner):
    with pytest.raises(InvalidInput, match="cannot clone"):
        runner.resolve(backend="espeak", clip_digests=["a" * 64, "b" * 64])


def _silence(path, seconds):
    media.write_wav(path, np.zeros(int(seconds * 16000), np.float32), 16000)
    return path


@pytest.fixture
def clip_dir(tmp_path):
    good = [
        espeak_wav(tmp_path / f"g{i}.wav", "This reference clip is long enough to use.") for i in range(2)
    ]
    short = espeak_wav(tmp_path / "short.wav", "Hi")
    silent = _silence(tmp_path / "silent.wav", 3.0)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 50)
    video = tmp_path / "video.mp4"
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=3"]
    subprocess.run([*cmd, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(video)], check=True)
    return {"good": good, "short": short, "silent": silent, "text": text, "video": video}


def test_reference_clips_are_checked(runner, clip_dir):
    from services.tts.backends.tortoise import TortoiseBackend

    be = TortoiseBackend(runner.cfg.weights_dir, runner.cfg.cache_dir)  # checks need no weights
    clips = runner.load_clips(clip_dir["good"], be)
    assert len(clips) == 2 and all(c.dtype == np.float32 for c in clips)
    assert all(2.0 < c.size / 22050 < 6.0 for c in clips)  # decoded at tortoise's 22.05 kHz
    assert all(audio.voiced_rms_db(c, 22050) > -35 for c in clips)
    cases = [
        ([clip_dir["good"][0]], "2-10 clips"),
        ([*clip_dir["good"], clip_dir["short"]], "clip 3 lasts"),
        ([clip_dir["silent"], *clip_dir["good"]], "clip 1 is silent"),
        ([clip_dir["good"][0], clip_dir["text"]], "clip 2 is not usable audio"),
        ([clip_dir["good"][0], clip_dir["video"]], "clip 2 is not usable audio"),
    ]
    for paths, needle in cases:
        with pytest.raises(InvalidInput, match=needle):
            runner.load_clips(paths, be)


def test_custom_clip_limits(tmp_path, clip_dir):
    r = TtsRunner(
        TtsRunnerConfig(weights_dir=tmp_path, cache_dir=tmp_path, clips=ClipLimits(min_clips=1, min_s=0.1))
    )
    from services.tts.backends.tortoise import TortoiseBackend

    assert len(r.load_clips([clip_dir["short"]], TortoiseBackend(tmp_path, tmp_path))) == 1


def test_espeak_missing_is_failed_precondition(tmp_path):
    r = TtsRunner(TtsRunnerConfig(weights_dir=tmp_path, cache_dir=tmp_path, espeak_binary="no-such-espeak"))
    with pytest.raises(FailedPrecondition, match="apt-get install espeak-ng"):
        r.plan("Hello.", backend="espeak")
