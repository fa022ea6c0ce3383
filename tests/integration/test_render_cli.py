"""`lihq render` as the README runs it: embedded local Ray + Serve gRPC + the filesystem store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lihq import media
from tests.integration.conftest import REPO, free_port
from tests.mediafiles import espeak_wav

pytestmark = pytest.mark.integration


def test_render_still_face_matches_audio(tmp_path):
    from PIL import Image
    from skimage.data import astronaut

    face = tmp_path / "face.png"
    Image.fromarray(astronaut()).save(face)
    audio = espeak_wav(tmp_path / "speech.wav", "A short sentence for the render test.")
    out = tmp_path / "out" / "video.mp4"
    env = dict(
        os.environ,
        LIHQ_HOME=str(tmp_path / "home"),
        LIHQ_RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
    )
    for k in [k for k in env if k.startswith("LIHQ_S3_")]:
        env.pop(k)
    cmd = [
        sys.executable,
        "-m",
        "lihq.cli.main",
        "render",
        "--face",
        str(face),
        "--audio",
        str(audio),
        "-o",
        str(out),
        "--size",
        "128",
        "--grpc-port",
        str(free_port()),
        "--config",
        str(REPO / "serve_configs" / "local.yaml"),
    ]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "not deployed yet" in r.stderr  # it says what it renders today
    info = media.probe(out, require_video=True, require_audio=True)
    assert (info.width, info.height, info.video_codec) == (128, 128, "h264")
    assert abs(info.duration - media.probe(audio).duration) <= 1 / 25 + 1e-3
    assert (tmp_path / "home" / "store").is_dir()  # the embedded default store was used
    assert face.exists() and audio.exists()  # inputs are never moved or deleted
