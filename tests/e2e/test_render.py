"""A whole 2-pass render with synthetic weights at a tiny size, as the README runs it:
`lihq render --weights synthetic` → local Ray + every stage app behind Serve's gRPC proxy + the file
store + ffmpeg, orchestrated in-process, with head motion from a reference video at an offset (the
path that once crashed). The mp4 must have the audio's duration (±1 frame), 25 fps, the expected
size, and audio; the last lines say per stage when it was done, and that the weights were synthetic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lihq import media
from tests.cliruns import isolated_env
from tests.integration.conftest import REPO, free_port
from tests.mediafiles import espeak_wav, lavfi_video

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]


def test_two_pass_render_with_synthetic_weights(tmp_path):
    from PIL import Image
    from skimage.data import astronaut

    face = tmp_path / "face.png"
    Image.fromarray(astronaut()).save(face)
    audio = espeak_wav(
        tmp_path / "speech.wav", "Hi there.", wpm=300
    )  # 0.35 s: GFPGAN costs seconds per face on CPU
    ref = lavfi_video(tmp_path / "ref.mp4", seconds=2.0, size="320x240", rate=30)
    face_bytes, audio_bytes = face.read_bytes(), audio.read_bytes()
    out = tmp_path / "out" / "video.mp4"
    env = isolated_env(tmp_path / "home")
    cmd = [
        sys.executable,
        "-m",
        "lihq_cli.main",
        "render",
        "--face",
        str(face),
        "--audio",
        str(audio),
        "--ref-video",
        str(ref),
        "--offset",
        "0.5",
        "--weights",
        "synthetic",
        "--upscale",
        "1",
        "-o",
        str(out),
        "--grpc-port",
        str(free_port()),
    ]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "SYNTHETIC WEIGHTS" in r.stderr  # a smoke render says so
    tail = r.stderr.strip().splitlines()[-4:]
    assert tail[0].startswith("stages done at") and tail[1].startswith("time: "), tail
    order = [part.split()[0] for part in tail[0].split(": ", 1)[1].split(", ")]
    assert order == ["ingest", "face", "audio", "cut", "fomm", "wav2lip", "gfpgan", "hls", "encode"], order
    assert tail[2].startswith("weights: SYNTHETIC") and tail[3].startswith(f"wrote {out.resolve()}"), tail
    info = media.probe(out, require_video=True, require_audio=True)
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (256, 256, "h264", "aac")
    assert abs(info.fps - 25.0) < 1e-6
    assert abs(info.duration - media.probe(audio).duration) <= 1 / 25 + 1e-3
    assert face.read_bytes() == face_bytes and audio.read_bytes() == audio_bytes  # inputs untouched
