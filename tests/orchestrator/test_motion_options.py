"""Issue #15 parts 2-3 in the planner, the spec checks, the adapters and the core: --keep-lips (no
Wav2Lip), motion presets (procedural driver only) and --offset random (seeded, chosen once the
reference is probed, kept in the render's spec)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from lihq.errors import InvalidInput
from lihq.storage import FileStore
from lihq.v1 import render_pb2
from orchestrator.core import Orchestrator
from orchestrator.executor import ADAPTERS, RenderContext, StageCall
from orchestrator.plan import build_plan
from orchestrator.scheduler import Limits, RetryPolicy, TaskResult
from orchestrator.spec import (
    MOTION_PRESETS,
    RenderSpec,
    check,
    choose_reference_offset,
    resolve_reference_offset,
    validate,
)
from orchestrator.spec_proto import spec_from_proto, spec_to_proto
from orchestrator.state import FAILED, SUCCEEDED, RenderRecord

BASE = RenderSpec(face_key="inputs/face.png", audio_key="inputs/speech.wav", segment_frames=10)
REF = replace(BASE, reference_video_key="inputs/ref.mp4")
WAV2LIP_TASKS = {"audio16k", "wav2lip.mel", "wav2lip.track", "wav2lip"}


def kinds(plan) -> set[str]:
    return {t.id.split("/")[0] for t in plan.tasks.values()}


# -- keep_lips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("passes", [1, 2])
def test_keep_lips_plans_no_wav2lip_and_restores_fomm_frames(passes):
    spec = replace(REF, keep_lips=True, passes=passes)
    plan = build_plan(spec, 2.3)
    assert not kinds(plan) & WAV2LIP_TASKS
    assert not any(t.stage == "wav2lip" for t in plan.tasks.values())
    for k in range(len(plan.segments)):
        assert plan.tasks[f"gfpgan1/{k}"].deps == (f"fomm1/{k}",)  # the reference's mouth, via FOMM
        assert plan.tasks[f"fomm1/{k}"].params["mode"] == "relative"
    # without keep_lips the same spec lip-syncs
    normal = build_plan(replace(spec, keep_lips=False), 2.3)
    assert WAV2LIP_TASKS <= kinds(normal)
    assert normal.tasks["gfpgan1/0"].deps == ("wav2lip/0",)


def test_keep_lips_without_a_reference_video_names_the_field():
    with pytest.raises(InvalidInput, match="keep_lips needs a reference video"):
        check(replace(BASE, keep_lips=True))


def test_keep_lips_render_needs_no_wav2lip_weights():
    from lihq_cli.weightsmode import needed_weights

    assert "s3fd" in needed_weights(REF)
    names = needed_weights(replace(REF, keep_lips=True))
    assert "s3fd" not in names and "wav2lip_gan" not in names and "fomm" in names


# -- motion presets -------------------------------------------------------------------------------
def test_motion_presets_agree_with_the_media_stage():
    from services.media.procedural_motion import PRESETS

    assert tuple(sorted(PRESETS)) == MOTION_PRESETS


def test_the_procedural_driver_carries_the_preset():
    plan = build_plan(replace(BASE, motion_preset="nodding"), 2.3)
    drivers = [t for t in plan.tasks.values() if t.id.startswith("driver/")]
    assert drivers and all(t.stage == "procedural" and t.params["motion"] == "nodding" for t in drivers)
    assert build_plan(BASE, 2.3).tasks["driver/0"].params["motion"] == ""  # default: today's sway


def test_unknown_motion_preset_lists_the_names():
    [problem] = validate(replace(BASE, motion_preset="wild"))
    assert problem.startswith("motion 'wild'") and all(n in problem for n in MOTION_PRESETS)


def test_motion_preset_with_a_reference_video_is_refused():
    with pytest.raises(InvalidInput, match="motion 'calm' shapes procedural motion only"):
        check(replace(REF, motion_preset="calm"))


class _Capture:
    def __init__(self) -> None:
        self.requests = []

    def call(self, method, request, timeout_s=None):
        from lihq.v1 import media_pb2

        self.requests.append((method, request))
        r = media_pb2.ProceduralMotionResponse()
        r.pack.key = "cache/media/x/driver.lfp"
        return r


def test_the_driver_adapter_sends_the_preset_to_procedural_motion():
    plan = build_plan(replace(BASE, motion_preset="lively", seed=9), 2.3)
    cap = _Capture()
    deps = {"face": TaskResult({"crop": "cache/media/f/crop.lfp"}), "speech": TaskResult({})}
    ADAPTERS["driver"](StageCall({"media": cap}, RenderContext("r1")), plan.tasks["driver/1"], deps)
    [(method, req)] = cap.requests
    assert method == "ProceduralMotion" and req.motion == "lively" and req.seed == 9
    assert (req.segment.start, req.segment.end) == (10, 20)


# -- random reference offset ----------------------------------------------------------------------
def test_random_offset_is_reproducible_inside_the_bounds_and_seed_dependent():
    picks = [choose_reference_offset(seed, 30.0, 4.0) for seed in range(200)]
    assert picks == [choose_reference_offset(seed, 30.0, 4.0) for seed in range(200)]
    assert all(0.0 <= p <= 26.0 for p in picks)
    assert len(set(picks)) > 190  # the seed picks the start
    assert min(picks) < 3.0 and max(picks) > 23.0  # spread over the whole span
    assert all(round(p, 3) == p for p in picks)  # whole ms: printing it repeats it exactly
    assert choose_reference_offset(5, 4.0, 4.0) == 0.0  # no room: the start
    assert choose_reference_offset(5, 3.0, 4.0) == 0.0  # too short: the length check refuses it


def test_resolve_leaves_room_for_the_rounded_frame_count():
    # 2.31 s of speech is 58 frames = 2.32 s at 25 fps: the cut must still fit in the reference
    for seed in range(300):
        spec = resolve_reference_offset(replace(REF, reference_offset_random=True, seed=seed), 5.0, 2.31)
        assert spec.reference_offset_random and spec.reference_offset_s + 2.32 <= 5.0 + 1e-9
    fixed = replace(REF, reference_offset_s=1.5)
    assert resolve_reference_offset(fixed, 5.0, 2.31) is fixed  # not random: untouched


def test_random_offset_needs_a_reference_video():
    with pytest.raises(InvalidInput, match="reference_offset_random"):
        check(replace(BASE, reference_offset_random=True))


def test_new_fields_round_trip_through_the_proto_and_the_record():
    spec = replace(REF, keep_lips=True, reference_offset_random=True, seed=4)
    p = spec_to_proto(spec)
    assert (p.keep_lips, p.reference_offset_random) == (True, True)
    assert spec_from_proto(p) == spec
    assert spec_from_proto(render_pb2.RenderSpec(motion="calm")).motion_preset == "calm"
    rec = RenderRecord("r1", replace(BASE, motion_preset="still"))
    assert RenderRecord.from_json(rec.to_json()).spec == rec.spec


class _Stages:
    """Answers every task with keys; records the cut offsets it was asked for."""

    def __init__(self, speech_s: float, ref_s: float) -> None:
        self.speech_s, self.ref_s, self.ran, self.cut_offsets = speech_s, ref_s, [], set()

    async def run(self, task, deps):
        self.ran.append(task.id)
        out = {"key": f"cache/{task.id}", "pack": f"cache/{task.id}.lfp"}
        if task.id == "speech":
            out["duration_s"] = self.speech_s
        if task.id == "reference":
            out["duration_s"] = self.ref_s
        if task.id.startswith("driver/"):
            self.cut_offsets.add(task.params["offset_s"])
        if task.id == "encode":
            out["video"] = "renders/x/output.mp4"
        return TaskResult(out)


def _render(tmp_path, spec, stages):
    async def go():
        orch = Orchestrator(
            FileStore(tmp_path / "store", "lihq"),
            stages,
            Limits(default_concurrency=2),
            RetryPolicy(attempts=1, base_s=0.001),
        )
        [rec] = await orch.create([spec])
        done = await orch.wait(rec.render_id)
        return done, orch.renders.load(rec.render_id)

    return asyncio.run(go())


def test_render_with_random_offset_cuts_at_the_chosen_start_and_records_it(tmp_path):
    spec = replace(REF, reference_offset_random=True, seed=11, keep_lips=True)
    stages = _Stages(speech_s=2.0, ref_s=9.0)
    done, saved = _render(tmp_path, spec, stages)
    assert done.state == SUCCEEDED, done.error
    chosen = choose_reference_offset(11, 9.0, 2.0)
    assert 0 < chosen <= 7.0
    assert stages.cut_offsets == {chosen}  # every segment cut from the one chosen start
    assert saved.spec.reference_offset_s == chosen and saved.spec.reference_offset_random  # recorded
    assert spec_to_proto(saved.spec).reference_offset_s == chosen  # what GetRender reports
    assert not any(t.split("/")[0] in WAV2LIP_TASKS for t in stages.ran)  # keep_lips: no Wav2Lip
    # the same seed and inputs choose the same start; another seed another one
    again, _ = _render(tmp_path / "b", spec, _Stages(2.0, 9.0))
    other, _ = _render(tmp_path / "c", replace(spec, seed=12), _Stages(2.0, 9.0))
    assert again.spec.reference_offset_s == chosen != other.spec.reference_offset_s


def test_random_offset_with_a_reference_shorter_than_the_speech_fails_naming_it(tmp_path):
    spec = replace(REF, reference_offset_random=True, seed=3)
    done, _ = _render(tmp_path, spec, _Stages(speech_s=4.0, ref_s=3.0))
    assert (done.state, done.error_code) == (FAILED, "INVALID_ARGUMENT")
    assert done.error.startswith("reference video") and "lasts 3.00 s" in done.error


# -- RenderService (plain gRPC host, fake stages) ------------------------------------------------
@pytest.fixture(scope="module")
def render_stub(tmp_path_factory):
    from lihq.v1 import render_pb2_grpc
    from orchestrator.servicer import RenderServicer
    from tests.orchestrator.test_core import FakeStages
    from tests.plaingrpc import plain_server

    store = FileStore(tmp_path_factory.mktemp("mo") / "store", "lihq")
    for key in ("inputs/f.png", "inputs/a.wav", "inputs/r.mp4"):
        store.put_bytes(key, b"stand-in")
    orch = Orchestrator(
        store,
        FakeStages(duration=1.0, ref_duration=10.0),
        Limits(default_concurrency=4),
        RetryPolicy(attempts=1, base_s=0.001),
    )
    with plain_server(RenderServicer(orch), [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]) as ch:
        yield render_pb2_grpc.RenderServiceStub(ch)


def _proto_spec(**kw):
    from lihq.v1 import common_pb2

    return render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key="inputs/f.png"), audio=common_pb2.ObjectRef(key="inputs/a.wav"), **kw
    )


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"keep_lips": True}, "keep_lips needs a reference video"),
        ({"reference_offset_random": True}, "reference_offset_random"),
        ({"motion": "wild"}, "motion 'wild': expected one of calm, lively, nodding, still, sway"),
        ({"motion": "calm", "reference_video": {"key": "inputs/r.mp4"}}, "motion 'calm'"),
    ],
)
def test_create_render_refuses_bad_options_naming_the_field(render_stub, kw, needle):
    import grpc

    with pytest.raises(grpc.RpcError) as ei:
        render_stub.CreateRender(render_pb2.CreateRenderRequest(renders=[_proto_spec(**kw)]), timeout=30)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in ei.value.details()


def test_get_render_reports_the_random_offset_it_chose(render_stub):
    from lihq.v1 import common_pb2

    req = render_pb2.CreateRenderRequest(
        renders=[
            _proto_spec(
                reference_video=common_pb2.ObjectRef(key="inputs/r.mp4"),
                reference_offset_random=True,
                keep_lips=True,
                seed=21,
            )
        ]
    )
    [r] = render_stub.CreateRender(req, timeout=30).renders
    events = list(render_stub.WatchRender(render_pb2.WatchRenderRequest(render_id=r.render_id), timeout=60))
    assert events[-1].render.state == render_pb2.RENDER_STATE_SUCCEEDED
    got = render_stub.GetRender(render_pb2.GetRenderRequest(render_id=r.render_id), timeout=30)
    assert got.spec.reference_offset_random and got.spec.keep_lips
    assert got.spec.reference_offset_s == choose_reference_offset(21, 10.0, 1.0) > 0
    assert not any(p.stage == "wav2lip" for p in got.progress)
