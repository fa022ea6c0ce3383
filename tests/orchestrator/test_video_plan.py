"""The plan of a face video (dubbing, issue #15): no FOMM, segments at the video's own rate sized so a
1080p segment's packs stay modest, and the options that only an image can take refused."""

from __future__ import annotations

import pytest

from lihq.errors import InvalidInput
from orchestrator.plan import build_plan, video_segment_frames
from orchestrator.spec import RenderSpec, check, with_defaults
from orchestrator.tenancy import with_face_kind


def _spec(**kw) -> RenderSpec:
    return with_defaults(RenderSpec(face_key="inputs/v.mp4", audio_key="inputs/a.wav", face_video=True, **kw))


def test_video_plan_skips_fomm_and_runs_at_the_video_rate():
    face = {"kind": "video", "video": "inputs/v.mp4", "fps": 30.0, "width": 320, "height": 240}
    plan = build_plan(_spec(), 2.0, face)
    stages = {t.id.split("/")[0] for t in plan.tasks.values()}
    assert not any(s.startswith("fomm") or s.startswith("driver") for s in stages)
    assert {"vframes", "vtrack", "vlips", "vcrop", "vrestore", "vpaste", "encode", "face"} <= stages
    assert plan.n_frames == 60 and plan.fps_out == 30.0
    assert plan.tasks["wav2lip.mel"].params["fps"] == 30.0  # mel chunks at the video's rate
    assert plan.segments[0] == (0, 50) and plan.segments[-1] == (50, 60)
    assert plan.tasks["encode"].deps[:2] == ("vpaste/0", "vpaste/1")
    assert plan.tasks["face"].params["kind"] == "video"
    assert list(plan.topological())  # no cycle


def test_1080p_segments_are_small():
    assert video_segment_frames(1920, 1080, 50) == 20  # 20 x 6.2 MB = 124 MB raw per pack
    assert video_segment_frames(320, 240, 50) == 50
    plan = build_plan(_spec(), 1.0, {"fps": 25.0, "width": 1920, "height": 1080})
    assert max(e - s for s, e in plan.segments) == 20


def test_first_tasks_plan_has_the_same_globals_without_the_face_result():
    before, after = (
        build_plan(_spec(), 1.0),
        build_plan(_spec(), 1.0, {"fps": 30.0, "width": 64, "height": 48}),
    )
    assert before.tasks["face"] == after.tasks["face"] and before.tasks["speech"] == after.tasks["speech"]


def test_image_face_plan_is_unchanged_by_the_field():
    img = with_defaults(RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav"))
    assert "fomm1/0" in build_plan(img, 1.0).tasks and "vframes/0" not in build_plan(img, 1.0).tasks


@pytest.mark.parametrize(
    "kw", [{"reference_video_key": "inputs/r.mp4"}, {"interpolate": 1}, {"paste_back": True}]
)
def test_image_only_options_are_refused_for_a_video_face(kw):
    with pytest.raises(InvalidInput, match="face is a video"):
        check(_spec(**kw))


def test_with_face_kind_reads_the_header(tmp_path):
    import cv2

    from lihq.storage.fs import FileStore
    from tests.videofaces import astronaut_frames, encode

    store = FileStore(tmp_path / "store", "lihq")
    video = encode(astronaut_frames(64, 48, 3), tmp_path / "v.mp4")
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), astronaut_frames(64, 48, 1)[0])
    store.put_file("inputs/v.mp4", video)
    store.put_file("inputs/f.png", png)
    base = RenderSpec(face_key="inputs/v.mp4", audio_key="inputs/a.wav", face_video=False)
    assert with_face_kind(store, base).face_video is True
    assert with_face_kind(store, RenderSpec(face_key="inputs/f.png", face_video=True)).face_video is False
    assert with_face_kind(store, RenderSpec(face_key="inputs/missing.png")).face_video is False
    with pytest.raises(InvalidInput, match="face is a video"):
        with_face_kind(store, RenderSpec(face_key="inputs/v.mp4", audio_key="a", paste_back=True))


def test_create_render_marks_a_video_face_and_runs_the_video_plan(tmp_path):
    """CreateRender (the RenderService and batch RayJob path) tells the video from its header; the
    render then runs the video plan (no FOMM) to the end, with fake stages."""
    import asyncio

    from lihq.storage.fs import FileStore
    from lihq.v1 import common_pb2, render_pb2
    from orchestrator.core import Orchestrator
    from orchestrator.scheduler import Limits, RetryPolicy
    from orchestrator.servicer import RenderServicer
    from tests.orchestrator.test_core import FakeStages

    store = FileStore(tmp_path / "store", "lihq")
    store.put_bytes("inputs/v.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    store.put_bytes("inputs/a.wav", b"stand-in")
    stages = FakeStages()

    async def go():
        orch = Orchestrator(
            store, stages, Limits(default_concurrency=4), RetryPolicy(attempts=1, base_s=0.001)
        )
        spec = render_pb2.RenderSpec(
            face=common_pb2.ObjectRef(key="inputs/v.mp4"), audio=common_pb2.ObjectRef(key="inputs/a.wav")
        )
        resp = await RenderServicer(orch).CreateRender(render_pb2.CreateRenderRequest(renders=[spec]))
        [r] = resp.renders
        return r, await orch.wait(r.render_id)

    created, done = asyncio.run(go())
    assert created.spec.face_video and done.state == "SUCCEEDED"
    ran = {tid.split("/")[0] for tid in stages.calls}
    assert {"face", "vframes", "vtrack", "vlips", "vcrop", "vrestore", "vpaste", "encode"} <= ran
    assert not any(t.startswith("fomm") for t in ran)
