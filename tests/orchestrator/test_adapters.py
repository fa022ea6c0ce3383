"""Every adapter in orchestrator/ against fake stubs at the gRPC edge.

Each plan that a `lihq render` knob can produce is run task by task (topological order) through
`GrpcExecutor` with fake stage clients. The fakes check what the real servicers rely on: the request is
the method's input type, the fields the stage requires are set, every object key sent was produced by
an earlier call (or is a render input), and the call carries the render id. They answer with the
method's real response type, its keys filled. So a param the plan does not set (KeyError in an
adapter), a request built from the wrong dependency, or a response field an adapter misreads fails
here — the end-to-end feature matrix (tests/e2e/test_matrix.py) then shows the stages agree.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace

import pytest
from google.protobuf.message import Message

from lihq.media import frame_count
from lihq.v1 import common_pb2
from orchestrator import adapters_models  # noqa: F401  (registers the model-stage adapters)
from orchestrator.executor import ADAPTERS, STUBS, GrpcExecutor
from orchestrator.plan import build_plan
from orchestrator.scheduler import TaskResult
from orchestrator.spec import Background, RenderSpec

INPUTS = {
    "inputs/face.png",
    "inputs/speech.wav",
    "inputs/ref.mp4",
    "inputs/bg.png",
    "inputs/bg.mp4",
    "inputs/talking.mp4",
}

# (app, method) -> request fields the real servicer requires (a scalar must be non-zero / non-empty)
REQUIRED = {
    ("media", "Ingest"): ("upload", "kind"),
    ("media", "PrepareFace"): ("image", "size"),
    ("media", "ExtractAudio"): ("source", "sample_rates"),
    ("media", "ProceduralMotion"): ("face", "segment"),
    ("media", "CutVideo"): ("video", "duration_s", "segment_frames", "width", "height", "fps"),
    ("media", "PasteBack"): ("frames", "image", "transform"),
    ("media", "Encode"): ("packs", "audio", "output_key"),
    ("media", "EncodeSegment"): ("pack", "audio", "end_s", "output_key"),
    ("media", "FaceVideoFrames"): ("video",),
    ("media", "FaceVideoCrop"): ("frames", "track"),
    ("media", "FaceVideoPaste"): ("frames", "track", "restored"),
    ("tts", "Synthesize"): ("text",),
    ("fomm", "PrepareMotion"): ("source", "driving_first", "checkpoint"),
    ("fomm", "Animate"): ("source", "driving", "segment", "globals"),
    ("wav2lip", "PrepareAudio"): ("wav_16k", "fps"),
    ("wav2lip", "TrackFaces"): ("packs", "pads"),
    ("wav2lip", "LipSync"): ("frames", "segment", "mel", "track", "checkpoint"),
    ("gfpgan", "Restore"): ("frames", "segment", "version", "upscale"),
    ("qvi", "Interpolate"): ("frames", "segment", "k"),
    ("modnet", "Matte"): ("frames", "segment"),
    ("modnet", "Composite"): ("frames", "matte", "segment", "background"),
}


def _method(app: str, name: str):
    stub = STUBS[app]
    module = __import__(stub.__module__.replace("_grpc", ""), fromlist=["DESCRIPTOR"])
    [service] = module.DESCRIPTOR.services_by_name.values()
    return service.methods_by_name[name]


class FakeStage:
    """One app's fake client: checks each request, answers with the real response type."""

    def __init__(self, app: str, world: FakeWorld) -> None:
        self.app, self.world = app, world

    def call(self, method: str, request: Message, timeout_s: float | None = None) -> Message:
        desc = _method(self.app, method)
        assert request.DESCRIPTOR.full_name == desc.input_type.full_name, (self.app, method)
        self.world.calls[(self.app, method)] += 1
        for name in REQUIRED[(self.app, method)]:
            fd = request.DESCRIPTOR.fields_by_name[name]
            value = getattr(request, name)
            if fd.is_repeated:
                assert len(value) > 0, f"{self.app}.{method}: {name} is empty"
            elif fd.message_type is not None:
                assert request.HasField(name), f"{self.app}.{method}: {name} is not set"
            else:
                assert value, f"{self.app}.{method}: {name} is not set"
        self._check_refs(request, f"{self.app}.{method}")
        if "ctx" in request.DESCRIPTOR.fields_by_name:
            assert request.ctx.render_id == self.world.render_id, f"{self.app}.{method}: no render id"
        return getattr(self, f"_{method}", self._generic)(request, desc)

    def _check_refs(self, msg: Message, where: str) -> None:
        for fd, value in msg.ListFields():
            if fd.message_type is None:
                continue
            items = value if fd.is_repeated else [value]
            for item in items:
                if fd.message_type.full_name == "lihq.v1.ObjectRef":
                    assert item.key in self.world.keys, f"{where}: {fd.name}={item.key!r} was never produced"
                else:
                    self._check_refs(item, where)

    def _new_key(self, what: str) -> str:
        key = f"fake/{self.app}/{what}/{next(self.world.counter)}"
        self.world.keys.add(key)
        return key

    def _fill(self, msg: Message, what: str) -> Message:
        for fd in msg.DESCRIPTOR.fields:
            if fd.message_type is not None and fd.message_type.full_name == "lihq.v1.ObjectRef":
                if not fd.is_repeated:
                    getattr(msg, fd.name).key = self._new_key(f"{what}.{fd.name}")
        return msg

    def _generic(self, request: Message, desc) -> Message:
        cls = self.world.classes[desc.output_type.full_name]
        return self._fill(cls(), desc.name)

    # -- answers whose shape the adapters read beyond keys ------------------------------------
    def _Ingest(self, request, desc):  # noqa: N802
        r = self._generic(request, desc)
        r.info.duration_s = {"speech": self.world.duration, "ref": self.world.ref_duration}.get(
            "ref" if request.kind == 3 else "speech", 0.0
        )
        r.info.width, r.info.height = 512, 512
        return r

    def _PrepareFace(self, request, desc):  # noqa: N802
        r = self._generic(request, desc)
        r.crop_face_x, r.crop_face_y, r.crop_face_width, r.crop_face_height = 70, 60, 116, 130
        return r

    def _ExtractAudio(self, request, desc):  # noqa: N802
        r = self.world.classes[desc.output_type.full_name]()
        for rate in request.sample_rates:
            r.tracks.add(sample_rate=rate, wav=common_pb2.ObjectRef(key=self._new_key("wav")))
        return r

    def _CutVideo(self, request, desc):  # noqa: N802
        r = self.world.classes[desc.output_type.full_name]()
        total = frame_count(request.duration_s, request.fps)
        for i, start in enumerate(range(0, total, request.segment_frames)):
            seg = common_pb2.Segment(index=i, start=start, end=min(total, start + request.segment_frames))
            r.segments.add(segment=seg, pack=common_pb2.ObjectRef(key=self._new_key("cut")))
        r.total_frames = total
        return r

    def _Synthesize(self, request, desc):  # noqa: N802
        r = self._generic(request, desc)
        r.duration_s = self.world.duration
        return r

    def _Encode(self, request, desc):  # noqa: N802
        self.world.encoded = request
        r = self._generic(request, desc)
        r.video.key = request.output_key
        return r


class FakeWorld:
    def __init__(self, render_id: str, duration: float, ref_duration: float = 30.0) -> None:
        from google.protobuf import message_factory

        self.render_id, self.duration, self.ref_duration = render_id, duration, ref_duration
        self.keys: set[str] = set(INPUTS)
        self.counter = itertools.count()
        self.calls: Counter = Counter()
        self.encoded = None
        self.classes = {}
        for app in STUBS:
            module = __import__(STUBS[app].__module__.replace("_grpc", ""), fromlist=["DESCRIPTOR"])
            for service in module.DESCRIPTOR.services_by_name.values():
                for m in service.methods:
                    for t in (m.input_type, m.output_type):
                        self.classes[t.full_name] = message_factory.GetMessageClass(t)

    def clients(self) -> dict[str, FakeStage]:
        return {app: FakeStage(app, self) for app in STUBS}


class _Rec:
    def __init__(self, render_id: str) -> None:
        self.render_id, self.synthetic = render_id, True


def run_plan(spec: RenderSpec, duration: float = 2.3) -> tuple[FakeWorld, dict[str, TaskResult]]:
    world = FakeWorld("r-test", duration)
    plan = build_plan(spec, duration)
    executor = GrpcExecutor({})
    executor._clients = world.clients()
    bound = executor.for_render(_Rec("r-test"))
    results: dict[str, TaskResult] = {}

    async def go():
        for task in plan.topological():
            deps = {d: results[d] for d in task.deps}
            results[task.id] = await bound.run(task, deps)

    asyncio.run(go())
    return world, results


BASE = RenderSpec(face_key="inputs/face.png", audio_key="inputs/speech.wav", segment_frames=10)
SPECS = {
    "default": BASE,
    "reference_video": replace(BASE, reference_video_key="inputs/ref.mp4", reference_offset_s=3.5),
    "text": replace(BASE, audio_key="", text="Hello there.", voice="en", tts_backend="espeak"),
    "one_pass_qvi": replace(BASE, passes=1, interpolate=3, upscale=2),
    "color_bg": replace(BASE, background=Background(color="#00ff00")),
    "image_bg": replace(
        BASE, background=Background(image_key="inputs/bg.png", speaker_scale=0.8, offset_x=4)
    ),
    "video_bg": replace(BASE, background=Background(video_key="inputs/bg.mp4", video_offset_s=1.0)),
    "paste_back": replace(BASE, paste_back=True, passes=1),
    "gfpgan14_wav2lip": replace(BASE, gfpgan_version="1.4", wav2lip_checkpoint="wav2lip", seed=7),
    "draft": replace(BASE, draft_seconds=0.5),
    # issue #15: the reference's own lips (no Wav2Lip) from a seeded start; a procedural-motion preset
    "keep_lips_random_offset": replace(
        BASE, reference_video_key="inputs/ref.mp4", keep_lips=True, reference_offset_random=True, seed=3
    ),
    "motion_preset": replace(BASE, motion_preset="nodding", seed=2),
    # issue #15: a video as the face (dubbing)
    "video_face": replace(BASE, face_key="inputs/talking.mp4", face_video=True),
    "everything": replace(
        BASE,
        reference_video_key="inputs/ref.mp4",
        reference_offset_s=1.0,
        interpolate=1,
        background=Background(color="blue"),
        upscale=1,
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_task_of_the_plan_runs_through_its_adapter(name):
    spec = SPECS[name]
    world, results = run_plan(spec)
    plan = build_plan(spec, 2.3)
    assert set(results) == set(plan.tasks)
    enc = world.encoded
    assert enc is not None and enc.output_key == "renders/r-test/output.mp4"
    # the encode gets the last stage's packs, one per segment, in order
    assert [p.key for p in enc.packs] == [
        results[f"{plan.final}/{k}"].outputs["pack"] for k in range(len(plan.segments))
    ]
    assert enc.audio.key == results["speech"].outputs["audio"]
    if spec.draft_seconds:
        assert enc.duration_s == pytest.approx(spec.draft_seconds)


def test_reference_video_cut_asks_for_the_planned_segments():
    spec = SPECS["reference_video"]
    world, results = run_plan(spec, duration=2.3)
    plan = build_plan(spec, 2.3)
    drivers = [t for t in plan.tasks.values() if t.id.startswith("driver/")]
    assert len(drivers) == len(plan.segments) > 1
    # every driver segment is a distinct pack of the cut, in timeline order
    packs = [results[f"driver/{k}"].outputs["pack"] for k in range(len(drivers))]
    assert len(set(packs)) == len(packs)
    assert world.calls[("media", "CutVideo")] == len(drivers)


def test_text_speech_goes_through_tts_not_ingest():
    world, _ = run_plan(SPECS["text"])
    assert world.calls[("tts", "Synthesize")] == 1
    assert world.calls[("media", "Ingest")] == 1  # the face only


def test_synthetic_render_gives_wav2lip_the_known_face_box():
    world, results = run_plan(BASE)
    assert results["wav2lip.track"].outputs["synthetic_box"] is True


def test_keep_lips_calls_no_lipsync_stage():
    world, _ = run_plan(SPECS["keep_lips_random_offset"])
    assert world.calls[("media", "CutVideo")] and world.calls[("gfpgan", "Restore")]
    assert not [c for c in world.calls if c[0] == "wav2lip"]
    assert not world.calls[("media", "ExtractAudio")]  # the 16 kHz copy fed only Wav2Lip's mel


def test_every_adapter_is_exercised():
    seen = set()
    for spec in SPECS.values():
        seen |= {t.id.split("/")[0] for t in build_plan(spec, 2.3).tasks.values()}
    # "tts" is reached through the speech adapter, "face.video" through the face adapter
    assert seen == set(ADAPTERS) - {"tts", "face.video"}


def test_video_face_checks_for_a_face_with_haar_in_synthetic_mode_and_skips_fomm():
    world, results = run_plan(SPECS["video_face"])
    assert results["face"].outputs["kind"] == "video"
    assert world.calls[("media", "FaceVideoFrames")] == 1 + len(build_plan(SPECS["video_face"], 2.3).segments)
    assert world.calls[("wav2lip", "TrackFaces")] == 2  # the face check (samples) and the whole track
    assert not [c for c in world.calls if c[0] == "fomm"]
