"""The scheduler with in-process executors (the gRPC executor is covered by the e2e tests)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from lihq.errors import Cancelled, InvalidInput, Unavailable
from orchestrator.plan import build_plan
from orchestrator.scheduler import Limits, RetryPolicy, Scheduler, TaskFailed, TaskResult
from orchestrator.spec import RenderSpec

SPEC = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav", segment_frames=10)
FAST = RetryPolicy(attempts=4, base_s=0.001, max_s=0.002)


class Recorder:
    """Completes every task after `delay(task)` seconds; records order and concurrency."""

    def __init__(self, delay=lambda t: 0.001, fail=None):
        self.delay, self.fail = delay, fail or (lambda t, n: None)
        self.started, self.finished = [], []
        self.inflight, self.peak = defaultdict(int), defaultdict(int)
        self.attempts = defaultdict(int)

    async def run(self, task, deps):
        assert set(deps) == set(task.deps) and all(d in self.finished for d in task.deps)
        self.attempts[task.id] += 1
        self.started.append(task.id)
        self.inflight[task.stage] += 1
        self.peak[task.stage] = max(self.peak[task.stage], self.inflight[task.stage])
        try:
            await asyncio.sleep(self.delay(task))
            err = self.fail(task, self.attempts[task.id])
            if err:
                raise err
        finally:
            self.inflight[task.stage] -= 1
        self.finished.append(task.id)
        return TaskResult({"key": f"cache/{task.id}"})


def run(sched):
    return asyncio.run(sched.run())


def test_runs_everything_in_dependency_order_within_limits():
    plan = build_plan(SPEC, 2.0)  # 50 frames -> 5 segments
    ex = Recorder(delay=lambda t: 0.002)
    res = run(Scheduler(plan, ex, Limits(concurrency={"fomm": 2, "gfpgan": 1}, default_concurrency=3), FAST))
    assert set(res) == set(plan.tasks) and len(ex.finished) == len(plan.tasks)
    assert ex.peak["fomm"] <= 2 and ex.peak["gfpgan"] == 1 and ex.peak["wav2lip"] <= 3


def test_segments_pipeline_across_stages():
    plan = build_plan(SPEC, 2.0)
    ex = Recorder(delay=lambda t: 0.2 if t.id == "wav2lip/4" else 0.001)
    run(Scheduler(plan, ex, Limits(default_concurrency=4), FAST))
    # segment 0 went on through GFPGAN and FOMM pass 2 while Wav2Lip was still busy with segment 4
    assert ex.started.index("fomm2/0") < ex.finished.index("wav2lip/4")


def test_retryable_errors_are_retried_then_succeed():
    plan = build_plan(SPEC, 0.4)
    ex = Recorder(fail=lambda t, n: Unavailable("stage down") if t.id == "wav2lip/0" and n < 3 else None)
    sched = Scheduler(plan, ex, retry=FAST)
    res = run(sched)
    assert res["wav2lip/0"].attempts == 3 and sched.calls["wav2lip/0"] == 3


def test_invalid_argument_fails_at_once_naming_the_task():
    plan = build_plan(SPEC, 0.4)
    ex = Recorder(fail=lambda t, n: InvalidInput("no face in frames 0-9") if t.id == "wav2lip/0" else None)
    sched = Scheduler(plan, ex, retry=FAST)
    with pytest.raises(TaskFailed) as ei:
        run(sched)
    assert ei.value.code == "INVALID_ARGUMENT" and "wav2lip/0" in ei.value.message
    assert sched.calls["wav2lip/0"] == 1 and "encode" not in ex.started


def test_retries_are_bounded():
    plan = build_plan(SPEC, 0.4)
    ex = Recorder(fail=lambda t, n: Unavailable("down") if t.stage == "gfpgan" else None)
    with pytest.raises(TaskFailed) as ei:
        run(Scheduler(plan, ex, retry=FAST))
    assert ei.value.code == "UNAVAILABLE" and ei.value.attempts == 4


def test_deadline_exceeded_is_retried_and_reported():
    plan = build_plan(SPEC, 0.4)
    ex = Recorder(delay=lambda t: 5.0 if t.id == "gfpgan1/0" else 0.001)
    with pytest.raises(TaskFailed) as ei:
        run(Scheduler(plan, ex, Limits(deadline_s={"gfpgan": 0.05}), RetryPolicy(attempts=2, base_s=0.001)))
    assert ei.value.code == "DEADLINE_EXCEEDED" and ei.value.attempts == 2


def test_cancel_stops_scheduling_and_in_flight_calls():
    plan = build_plan(SPEC, 2.0)
    ex = Recorder(delay=lambda t: 0.05)

    async def go():
        sched = Scheduler(plan, ex, retry=FAST)
        runner = asyncio.create_task(sched.run())
        await asyncio.sleep(0.12)
        sched.cancel()
        with pytest.raises(Cancelled):
            await runner
        return sched

    asyncio.run(go())
    assert "encode" not in ex.started and len(ex.finished) < len(plan.tasks)
    assert all(v == 0 for v in ex.inflight.values())  # nothing left running


def test_resume_recomputes_nothing_finished_and_reports_progress():
    plan = build_plan(SPEC, 2.0)
    first = Recorder(fail=lambda t, n: InvalidInput("boom") if t.id == "gfpgan2/3" else None)
    s1 = Scheduler(plan, first, Limits(default_concurrency=1), FAST)
    with pytest.raises(TaskFailed):
        run(s1)
    done = dict(s1.results)
    assert "gfpgan2/3" not in done and "fomm1/0" in done
    second = Recorder()
    second.finished = list(done)  # what the first run finished counts as done
    s2 = Scheduler(plan, second, Limits(default_concurrency=1), FAST, done=done)
    run(s2)
    assert not set(second.started) & set(done)  # finished tasks were not recomputed
    assert set(second.started) | set(done) == set(plan.tasks)
    assert s2.progress.done == s2.progress.total and s2.progress.eta_s(Limits()) == 0.0
