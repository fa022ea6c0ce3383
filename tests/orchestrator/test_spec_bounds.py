"""Every number and name of a RenderSpec is bounded at creation (INVALID_ARGUMENT naming the field)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from orchestrator.spec import Background, RenderSpec, validate

OK = RenderSpec(face_key="f.png", audio_key="a.wav")


@pytest.mark.parametrize(
    "spec, needle",
    [
        (replace(OK, seed=-1), "seed=-1"),
        (replace(OK, seed=2**32), "seed="),
        (replace(OK, background=Background(color="green", rotation_deg=math.nan)), "rotation_deg=nan"),
        (replace(OK, background=Background(color="green", rotation_deg=720)), "rotation_deg=720"),
        (replace(OK, background=Background(video_key="v.mp4", video_offset_s=math.inf)), "video_offset_s"),
        (replace(OK, background=Background(color="green", offset_x=10**6)), "speaker offset"),
        (replace(OK, audio_key="", text="hi", voice="v" * 101), "voice: at most 100"),
        (replace(OK, audio_key="", text="hi", tts_backend="x\n"), "tts_backend"),
        (replace(OK, wav2lip_checkpoint="w" * 5000), "wav2lip_checkpoint"),
    ],
)
def test_out_of_range_values_are_named_and_not_echoed_in_full(spec, needle):
    problems = validate(spec)
    assert any(needle in p for p in problems), problems
    assert all(len(p) < 300 for p in problems)


def test_the_defaults_and_the_edges_pass():
    assert validate(OK) == []
    assert validate(replace(OK, seed=2**32 - 1)) == []
