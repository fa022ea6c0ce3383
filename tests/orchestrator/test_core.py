"""Orchestrator core over a FileStore with an in-process executor: creation checks, idempotency,
persisted state, resume without recomputation, cancel, watch. (Real stages: the e2e tests.)"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from lihq.errors import InvalidInput
from lihq.storage import FileStore
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy, TaskResult
from orchestrator.spec import RenderSpec
from orchestrator.state import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, RenderStore

SPEC = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav", segment_frames=10)
FAST = RetryPolicy(attempts=2, base_s=0.001)


class FakeStages:
    """Answers every task like the real stages would, with keys; can fail or stall on demand."""

    def __init__(self, duration=1.0, ref_duration=10.0, fail_on=None, stall_on=None, no_face=False):
        self.calls = Counter()
        self.duration, self.ref_duration = duration, ref_duration
        self.fail_on, self.stall_on, self.no_face = fail_on, stall_on, no_face

    async def run(self, task, deps):
        self.calls[task.id] += 1
        await asyncio.sleep(0.001)
        if self.stall_on and task.id == self.stall_on:
            await asyncio.sleep(3600)
        if self.fail_on and task.id == self.fail_on:
            raise InvalidInput(f"bad frames in {task.id}")
        if task.id == "face" and self.no_face:
            raise InvalidInput("no face found in the image")
        out = {"key": f"cache/{task.id}"}
        if task.id == "speech":
            out["duration_s"] = self.duration
        if task.id == "reference":
            out["duration_s"] = self.ref_duration
        if task.id == "encode":
            out["video"] = "renders/x/output.mp4"
        return TaskResult(out)


def make(tmp_path, stages, **kw):
    return Orchestrator(
        FileStore(tmp_path / "store", "lihq"), stages, Limits(default_concurrency=2), FAST, **kw
    )


def test_render_runs_to_success_and_persists(tmp_path):
    async def go():
        orch = make(tmp_path, FakeStages())
        [rec] = await orch.create([SPEC])
        done = await orch.wait(rec.render_id)
        return orch, done

    orch, done = asyncio.run(go())
    assert done.state == SUCCEEDED and done.output_key == "renders/x/output.mp4"
    assert done.progress["fomm"][0] == done.progress["fomm"][1] > 0
    assert RenderStore(orch.renders.store).load(done.render_id).state == SUCCEEDED  # in the store


def test_a_bad_face_fails_the_render_at_its_first_task_with_invalid_argument(tmp_path):
    """Face detection is no longer part of CreateRender (it answers at once): it is the render's first
    task, and a face it cannot find fails the render with INVALID_ARGUMENT, the message and the stage."""

    async def go():
        stages = FakeStages(no_face=True)
        orch = make(tmp_path, stages)
        [rec] = await orch.create([SPEC])
        assert rec.state == QUEUED and not stages.calls  # nothing ran before CreateRender answered
        return await orch.wait(rec.render_id), stages

    rec, stages = asyncio.run(go())
    assert (rec.state, rec.error_code, rec.error_stage) == (FAILED, "INVALID_ARGUMENT", "face")
    assert "no face found" in rec.error
    assert set(stages.calls) == {"face"}  # nothing else ran


def test_bad_spec_is_rejected_at_creation_and_leaves_nothing(tmp_path):
    async def go():
        orch = make(tmp_path, FakeStages())
        with pytest.raises(InvalidInput, match="render 2 of 2"):
            await orch.create([SPEC, replace(SPEC, passes=3)])
        return orch

    orch = asyncio.run(go())
    assert orch.list() == [] and not list(orch.renders.store.list(""))


def test_reference_video_too_short_fails_the_render_naming_the_reference(tmp_path):
    spec = RenderSpec(face_key="f", audio_key="a", reference_video_key="r", reference_offset_s=8.0)

    async def go():
        orch = make(tmp_path, FakeStages(duration=3.0, ref_duration=10.0))
        [rec] = await orch.create([spec])
        return await orch.wait(rec.render_id)

    rec = asyncio.run(go())
    assert (rec.state, rec.error_code) == (FAILED, "INVALID_ARGUMENT") and rec.error_stage
    assert "reference video lasts 10.00 s" in rec.error


def test_idempotent_create_returns_the_same_renders(tmp_path):
    async def go():
        stages = FakeStages()
        orch = make(tmp_path, stages)
        a = await orch.create([SPEC, SPEC], idempotency_key="job-1")
        b = await orch.create([SPEC, SPEC], idempotency_key="job-1")
        for r in a:
            await orch.wait(r.render_id)
        return a, b, orch

    a, b, orch = asyncio.run(go())
    assert [r.render_id for r in a] == [r.render_id for r in b] and len(orch.list()) == 2


class SlowPrecheck(FakeStages):
    """The creation checks take a while (as a real face detection does)."""

    async def run(self, task, deps):
        if task.id == "face":
            await asyncio.sleep(0.05)
        return await super().run(task, deps)


def test_concurrent_creates_with_one_idempotency_key_make_one_set_of_renders(tmp_path):
    async def go():
        stages = SlowPrecheck()
        orch = make(tmp_path, stages)
        a, b = await asyncio.gather(
            orch.create([SPEC], idempotency_key="job-1"), orch.create([SPEC], idempotency_key="job-1")
        )
        for r in a:
            await orch.wait(r.render_id)
        return a, b, orch, stages

    a, b, orch, stages = asyncio.run(go())
    assert [r.render_id for r in a] == [r.render_id for r in b] and len(orch.list()) == 1
    assert stages.calls["face"] == 1  # the creation checks ran once: the second call waited for them
    assert orch._creating == {}  # the per-key lock is dropped once no call uses it


def test_failure_names_the_stage(tmp_path):
    async def go():
        orch = make(tmp_path, FakeStages(fail_on="wav2lip/1"))
        [rec] = await orch.create([SPEC])
        return await orch.wait(rec.render_id)

    rec = asyncio.run(go())
    assert rec.state == FAILED and rec.error_stage == "wav2lip" and rec.error_code == "INVALID_ARGUMENT"
    assert "wav2lip/1" in rec.error


def test_restarted_orchestrator_resumes_without_recomputing(tmp_path):
    stalled = FakeStages(stall_on="gfpgan2/2")

    async def first():
        orch = make(tmp_path, stalled)
        [rec] = await orch.create([SPEC])
        while "gfpgan2/1" not in orch.get(rec.render_id).results:
            await asyncio.sleep(0.01)
        return rec.render_id  # the loop ends here: the orchestrator "dies" mid-render

    rid = asyncio.run(first())
    saved = RenderStore(FileStore(tmp_path / "store", "lihq")).load(rid, results=True)
    assert saved.state == RUNNING and "gfpgan2/1" in saved.results
    fresh = FakeStages()

    async def second():
        orch = make(tmp_path, fresh)
        assert await orch.resume_all() == [rid]
        return await orch.wait(rid)

    rec = asyncio.run(second())
    assert rec.state == SUCCEEDED
    assert not set(fresh.calls) & set(saved.results)  # finished tasks were not called again
    assert all(n == 1 for n in fresh.calls.values())


def test_cancel_and_watch(tmp_path):
    async def go():
        orch = make(tmp_path, FakeStages(stall_on="fomm1/1"))
        [rec] = await orch.create([SPEC])
        seen = []

        async def watcher():
            async for r in orch.watch(rec.render_id, timeout_s=0.5):
                seen.append(r.state)

        w = asyncio.create_task(watcher())
        while "fomm1/0" not in orch.get(rec.render_id).results:
            await asyncio.sleep(0.01)
        done = await orch.cancel(rec.render_id)
        await asyncio.wait_for(w, 5)
        return done, seen

    done, seen = asyncio.run(go())
    assert done.state == CANCELLED and seen[-1] == CANCELLED and RUNNING in seen


class BindingStages(FakeStages):
    """An executor that must be bound to each render (as GrpcExecutor is, for ids and synthetic mode)."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, bool, str]] = []
        self.bound: tuple[str, bool] | None = None

    def for_render(self, rec):
        child = BindingStages.__new__(BindingStages)
        child.__dict__ = dict(self.__dict__)
        child.bound = (rec.render_id, rec.synthetic)
        return child

    async def run(self, task, deps):
        self.seen.append((*(self.bound or ("", False)), task.id))
        return await super().run(task, deps)


def test_every_task_runs_on_the_executor_bound_to_its_render(tmp_path):
    stages = BindingStages()

    async def go():
        orch = make(tmp_path, stages, synthetic=True)
        [rec] = await orch.create([SPEC])
        return await orch.wait(rec.render_id)

    rec = asyncio.run(go())
    assert rec.state == SUCCEEDED and rec.synthetic
    assert {(rid, syn) for rid, syn, _ in stages.seen} == {(rec.render_id, True)}
    assert {t for _, _, t in stages.seen} >= {"wav2lip.track", "encode"}
