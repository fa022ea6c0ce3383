"""One x264 preset table: the encoder (lihq/media/encode.py) and the media stage (services/media) agree."""

from __future__ import annotations

import numpy as np
import pytest

from lihq.errors import InvalidInput
from lihq.media import encode as enc
from services.media.runner import MediaRunner, MediaRunnerConfig

FRAMES = [np.zeros((16, 16, 3), np.uint8)] * 2


def test_the_table_is_x264s_list_without_placebo():
    assert enc.X264_PRESETS[0] == "ultrafast" and enc.X264_PRESETS[-1] == "veryslow"
    assert "medium" in enc.X264_PRESETS and "placebo" not in enc.X264_PRESETS


@pytest.mark.parametrize("preset", ["placebo", "turbo", ""])
def test_encoder_and_stage_refuse_the_same_presets_alike(preset, tmp_path):
    with pytest.raises(InvalidInput) as direct:
        enc.encode_video(FRAMES, 25.0, tmp_path / "a.mp4", preset=preset)
    with pytest.raises(InvalidInput) as staged:
        MediaRunner(MediaRunnerConfig()).encode(FRAMES, 25.0, tmp_path / "b.mp4", None, preset=preset)
    assert str(direct.value) == str(staged.value) == str(InvalidInput(f"preset {preset!r}: expected one of "
        + ", ".join(enc.X264_PRESETS)))  # fmt: skip
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


def test_every_listed_preset_encodes(tmp_path):
    runner = MediaRunner(MediaRunnerConfig())
    info = runner.encode(FRAMES, 25.0, tmp_path / "x.mp4", None, preset=enc.X264_PRESETS[0])
    assert info.width == 16
    for preset in enc.X264_PRESETS:  # the check alone (no ffmpeg run per preset): accepted by both
        assert enc.check_preset(preset) == preset
