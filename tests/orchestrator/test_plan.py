"""The planner: every knob maps to the right tasks, LIHQ defaults, bad combinations rejected with reasons."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lihq.errors import InvalidInput
from orchestrator.plan import build_plan
from orchestrator.spec import Background, RenderSpec, validate, with_defaults

BASE = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav")


def stages(plan) -> set[str]:
    return {t.split("/")[0] for t in plan.tasks}


def test_lihq_defaults():
    s = with_defaults(
        RenderSpec(
            face_key="f",
            audio_key="a",
            passes=0,
            upscale=0,
            gfpgan_version="",
            wav2lip_checkpoint="",
            segment_frames=0,
        )
    )
    assert (s.passes, s.upscale, s.gfpgan_version, s.wav2lip_checkpoint) == (2, 4, "1.3", "wav2lip_gan")
    assert s.pads == (0, 20, 0, 0) and s.segment_frames == 50 and s.fps_out == 25.0
    assert validate(s) == []


def test_two_pass_graph_and_segment_dependencies():
    p = build_plan(BASE, audio_duration_s=4.5)  # 113 frames -> 3 segments
    assert p.n_frames == 113 and p.segments == ((0, 50), (50, 100), (100, 113))
    assert {"driver", "fomm1", "wav2lip.track", "wav2lip", "gfpgan1", "fomm2", "gfpgan2", "encode"} <= stages(
        p
    )
    assert "qvi" not in stages(p) and "matte" not in stages(p)
    t = p.tasks
    assert t["fomm1/1"].params["mode"] == "relative" and t["fomm2/1"].params["mode"] == "absolute"
    assert t["wav2lip/2"].deps == ("fomm1/2", "wav2lip.track", "wav2lip.mel")
    assert t["wav2lip.track"].deps == ("fomm1/0", "fomm1/1", "fomm1/2", "face")  # a global over the clip
    assert t["gfpgan1/0"].params["output_size"] == 256  # pass 1 only feeds FOMM pass 2
    assert not t["gfpgan1/0"].params["background_upsampler"]
    assert t["gfpgan2/0"].params["upscale"] == 4
    assert t["encode"].deps[:3] == ("gfpgan2/0", "gfpgan2/1", "gfpgan2/2")
    assert t["fomm2.prepare"].deps == ("face", "gfpgan1/0")
    order = [x.id for x in p.topological()]
    assert (
        order.index("wav2lip/0") < order.index("gfpgan1/0") < order.index("fomm2/0") < order.index("encode")
    )


def test_one_pass_final_restoration_is_upscaled():
    p = build_plan(replace(BASE, passes=1, background_upsampler=True), 1.0)
    assert "fomm2" not in stages(p) and "gfpgan2" not in stages(p)
    g = p.tasks["gfpgan1/0"].params
    assert g["upscale"] == 4 and g["output_size"] == 0 and g["background_upsampler"]


def test_text_uses_tts_and_audio_uses_ingest():
    assert (
        build_plan(replace(BASE, audio_key="", text="Hi.", voice="tom"), 1.0).tasks["speech"].stage == "tts"
    )
    assert build_plan(BASE, 1.0).tasks["speech"].stage == "ingest"


def test_reference_video_vs_procedural_motion():
    p = build_plan(replace(BASE, reference_video_key="inputs/r.mp4", reference_offset_s=3.5), 1.0)
    assert p.tasks["driver/0"].stage == "cut" and p.tasks["driver/0"].params["offset_s"] == 3.5
    assert build_plan(BASE, 1.0).tasks["driver/0"].stage == "procedural"


def test_interpolation_background_paste_and_fps():
    p = build_plan(replace(BASE, interpolate=3, background=Background(color="#00ff00")), 4.0)
    assert p.fps_out == 100.0 and p.tasks["encode"].params["fps"] == 100.0
    assert p.tasks["qvi/1"].deps == ("gfpgan2/0", "gfpgan2/1")  # 1 before, 2 after (clipped at the end)
    assert p.tasks["qvi/0"].params["k"] == 3
    assert p.tasks["composite/0"].deps == ("qvi/0", "matte/0") and p.final == "composite"
    pb = build_plan(replace(BASE, paste_back=True), 1.0)
    assert pb.final == "paste"


def test_draft_mode_renders_only_the_first_seconds():
    p = build_plan(replace(BASE, draft_seconds=2.0), audio_duration_s=30.0)
    assert p.n_frames == 50 and len(p.segments) == 1 and p.duration_s == 2.0


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(audio_key="", text=""), "exactly one of audio or text"),
        (dict(text="hello"), "exactly one of audio or text"),
        (dict(voice="tom"), "voice / tts_backend apply to text only"),
        (dict(passes=3), "passes=3"),
        (dict(wav2lip_checkpoint="lipgan"), "wav2lip_checkpoint"),
        (dict(gfpgan_version="2.0"), "gfpgan_version"),
        (dict(interpolate=9), "interpolate=9"),
        (dict(pads=(0, -1, 0, 0)), "pads"),
        (dict(reference_offset_s=2.0), "no reference video"),
        (
            dict(background=Background(color="#00ff00", image_key="inputs/b.png")),
            "one of color, image or video",
        ),
        (dict(background=Background(color="chartreuse-ish")), "background color"),
        (dict(background=Background(offset_x=10)), "need a background"),
        (dict(paste_back=True, background=Background(color="green")), "exclusive"),
        (dict(face_key=""), "face image is required"),
        (dict(upscale=8), "upscale=8"),
    ],
)
def test_bad_combinations_are_rejected_with_reasons(change, reason):
    with pytest.raises(InvalidInput, match=reason):
        build_plan(replace(BASE, **change), 1.0)


def test_several_problems_reported_together():
    problems = validate(replace(BASE, passes=5, interpolate=-1))
    assert len(problems) == 2
