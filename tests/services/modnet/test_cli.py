"""`python -m services.modnet`: background replacement of a whole video on one machine."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lihq import media
from services.modnet.alpha_video import probe_alpha
from services.modnet.cli import matte
from tests.mediafiles import lavfi_video


@pytest.fixture(scope="module")
def speaker_video(tmp_path_factory):
    """1 s of 64x48 test pattern at 10 fps with a sine tone."""
    return lavfi_video(
        tmp_path_factory.mktemp("cli") / "speaker.mp4", seconds=1.0, size="64x48", rate=10, audio=True
    )


def _run(args):
    result = CliRunner().invoke(matte, [str(a) for a in args])
    return result


def test_colour_background_with_alpha_and_matte_outputs(speaker_video, modnet_ckpt, tmp_path):
    out, alpha, mv = tmp_path / "out.mp4", tmp_path / "speaker.webm", tmp_path / "matte.mp4"
    result = _run(
        [speaker_video, "-o", out, "--background", "#00ff00", "--size", "96x80", "--offset", 16, 20]
        + [
            "--alpha",
            alpha,
            "--matte-video",
            mv,
            "--weights",
            modnet_ckpt,
            "--ref-size",
            64,
            "--device",
            "cpu",
        ]
    )
    assert result.exit_code == 0, result.output
    info = media.probe(out, require_video=True)
    assert (info.width, info.height, info.has_audio) == (96, 80, True)
    assert abs(info.duration - 1.0) < 0.15
    frames = media.decode_video(out, fps=10)
    assert len(frames) == 10
    assert np.abs(frames[:, :16, :].astype(int) - (0, 255, 0)).max() < 24  # above the speaker: background
    a = probe_alpha(alpha)
    assert a.pix_fmt == "yuva420p" and (a.width, a.height, a.frames) == (96, 80, 10)
    grey = media.decode_video(mv, fps=10)
    assert grey.shape == (10, 80, 96, 3) and grey[:, :20].max() < 16  # nothing placed above row 20


def test_image_background_sets_the_size(speaker_video, modnet_ckpt, tmp_path):
    img = tmp_path / "bg.png"
    Image.fromarray(np.full((72, 120, 3), (200, 30, 30), np.uint8)).save(img)
    out = tmp_path / "out.mp4"
    result = _run(
        [speaker_video, "-o", out, "--background", img, "--scale", 0.5, "--rotation", 10]
        + ["--weights", modnet_ckpt, "--ref-size", 64, "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    info = media.probe(out, require_video=True)
    assert (info.width, info.height) == (120, 72)


def test_bad_background_and_alpha_name(speaker_video, modnet_ckpt, tmp_path):
    bad = _run([speaker_video, "-o", tmp_path / "o.mp4", "--background", "blurple", "--weights", modnet_ckpt])
    assert bad.exit_code != 0 and "CSS colour" in str(bad.exception)
    bad = _run(
        [speaker_video, "-o", tmp_path / "o.mp4", "--alpha", tmp_path / "a.avi", "--weights", modnet_ckpt]
    )
    assert bad.exit_code != 0 and ".webm" in str(bad.exception)
    assert not (tmp_path / "o.mp4").exists()
