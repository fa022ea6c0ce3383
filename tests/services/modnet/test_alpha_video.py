"""Alpha video export for editors: WebM VP9 (yuva420p) and ProRes 4444, checked with ffprobe + decoding."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from lihq.errors import InvalidInput
from services.modnet.alpha_video import AlphaVideoWriter, probe_alpha
from services.modnet.compose import Placement, place_speaker


def _layer(n=6, h=24, w=32):
    """A speaker layer whose alpha ramps left to right; colour is a flat orange."""
    rgb = np.zeros((n, h, w, 3), np.uint8)
    rgb[:] = (240, 120, 20)
    alpha = np.broadcast_to(np.linspace(0, 255, w).astype(np.uint8), (n, h, w)).copy()
    return rgb, alpha


def _decode_rgba(path, size, codec_args=()):
    w, h = size
    out = subprocess.run(
        ["ffmpeg", "-v", "error", *codec_args, "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 4)


@pytest.mark.parametrize(
    "fmt, pix_fmt, decoder",
    [("prores", "yuva444p12le", ()), ("webm", "yuva420p", ("-c:v", "libvpx-vp9"))],
)
def test_alpha_video_has_an_alpha_channel(tmp_path, fmt, pix_fmt, decoder):
    rgb, alpha = _layer()
    out = tmp_path / f"layer.{fmt}"
    with AlphaVideoWriter(out, 25.0, fmt) as w:
        w.write(rgb[:3], alpha[:3])
        w.write(rgb[3:], alpha[3:])
    info = probe_alpha(out)
    assert info.pix_fmt == pix_fmt and info.has_alpha
    assert (info.width, info.height, info.frames) == (32, 24, 6)
    back = _decode_rgba(out, (32, 24), decoder)
    assert back.shape == (6, 24, 32, 4)
    assert np.abs(back[..., 3].astype(int) - alpha).max() <= 4
    opaque = back[alpha > 200]
    assert np.abs(opaque[:, :3].astype(int) - (240, 120, 20)).max() <= 12


def test_odd_sizes_are_padded_with_transparency(tmp_path):
    rgb, alpha = _layer(n=2, h=15, w=21)
    alpha[:] = 255
    out = tmp_path / "odd.webm"
    with AlphaVideoWriter(out, 10.0, "webm") as w:
        w.write(rgb, alpha)
    info = probe_alpha(out)
    assert (info.width, info.height) == (22, 16) and info.has_alpha
    back = _decode_rgba(out, (22, 16), ("-c:v", "libvpx-vp9"))
    assert back[0, :15, :21, 3].min() >= 250 and back[0, 15, :, 3].max() <= 8


def test_placed_speaker_layer_round_trips(tmp_path):
    rgb, _ = _layer(n=2, h=8, w=8)
    mattes = np.full((2, 8, 8), 255, np.uint8)
    fg, alpha = place_speaker(rgb, mattes, Placement(offset_x=12, offset_y=4), (32, 16))
    out = tmp_path / "placed.mov"
    with AlphaVideoWriter(out, 25.0, "prores") as w:
        w.write(fg, alpha)
    back = _decode_rgba(out, (32, 16))
    assert back[0, 4:12, 12:20, 3].min() >= 250 and back[0, :4, :, 3].max() <= 4


def test_writer_errors(tmp_path):
    with pytest.raises(InvalidInput, match="format"):
        AlphaVideoWriter(tmp_path / "x.avi", 25.0, "avi")
    with pytest.raises(InvalidInput, match="no frames"):
        with AlphaVideoWriter(tmp_path / "x.webm", 25.0):
            pass
    rgb, alpha = _layer(n=1)
    with pytest.raises(InvalidInput, match="differs"):
        with AlphaVideoWriter(tmp_path / "y.webm", 25.0) as w:
            w.write(rgb, alpha)
            w.write(rgb[:, :8], alpha[:, :8])
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind
