"""Each render in its own named, detached, restartable Ray actor (orchestrator/actors.py), on a local
Ray: renders run and end their actors; one actor per render however often it is launched; an actor
killed mid-render is restarted by Ray and resumes from the store, recomputing nothing that finished."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import pytest

from lihq.storage import FileStore
from orchestrator.actors import NAMESPACE, ActorOrchestrator, actor_name
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy, TaskResult
from orchestrator.spec import RenderSpec
from orchestrator.state import CANCELLED, SUCCEEDED

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
SPEC = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav", segment_frames=10)


class StoreLoggedStages:
    """Instant stages that record every call as an object (the actor runs in another process)."""

    def __init__(self, root: str, slow_s: float) -> None:
        self.root, self.slow_s = root, slow_s

    async def run(self, task, deps):
        store = FileStore(Path(self.root), "lihq")
        await asyncio.to_thread(store.put_content_addressed, "calls", f"{task.id}:{time.time_ns()}".encode())
        if task.stage in ("gfpgan", "encode"):
            await asyncio.sleep(self.slow_s)
        out = {"key": f"cache/{task.id}"}
        if task.id == "speech":
            out["duration_s"] = 4.0
        if task.id == "encode":
            out["video"] = "renders/x/output.mp4"
        return TaskResult(out)


def make(root: str, slow_s: float) -> Orchestrator:
    return Orchestrator(
        FileStore(Path(root), "lihq"),
        StoreLoggedStages(root, slow_s),
        Limits(default_concurrency=2),
        RetryPolicy(attempts=2, base_s=0.01),
    )


def calls(root: Path) -> list[str]:
    store = FileStore(root, "lihq")
    return [store.get_bytes(i.key).decode().split(":")[0] for i in store.list("calls/")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    yield
    ray.shutdown()


def test_renders_run_in_their_own_actors_once_each(local_ray, tmp_path):
    root = str(tmp_path / "store")
    orch = ActorOrchestrator(functools.partial(make, root, 0.0))

    async def go():
        # three in one request: saved through the creation journal, each actor launched once its
        # record is written out on its own
        recs = await orch.create([SPEC] * 3)
        orch.launch(recs[0].render_id)  # a second launch (another replica resuming) finds the same actor
        return [await asyncio.wait_for(orch.wait(r.render_id), 300) for r in recs]

    done = asyncio.run(go())
    assert [r.state for r in done] == [SUCCEEDED] * 3
    made = calls(tmp_path / "store")
    assert made.count("encode") == 3 and made.count("face") == 3  # each render ran once
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # finished actors end themselves
        alive = []
        for r in done:
            try:
                ray.get_actor(actor_name(r.render_id), namespace=NAMESPACE)
                alive.append(r.render_id)
            except ValueError:
                pass
        if not alive:
            break
        time.sleep(0.5)
    assert not alive


def test_a_killed_render_actor_is_restarted_and_resumes_without_recomputing(local_ray, tmp_path):
    root = str(tmp_path / "store")
    orch = ActorOrchestrator(functools.partial(make, root, 0.3))

    async def go():
        [rec] = await orch.create([SPEC])
        while "gfpgan" not in " ".join(calls(tmp_path / "store")):
            await asyncio.sleep(0.1)
        before = calls(tmp_path / "store")
        actor = ray.get_actor(actor_name(rec.render_id), namespace=NAMESPACE)
        ray.kill(actor, no_restart=False)  # the process dies; Ray restarts the actor
        return before, await asyncio.wait_for(orch.wait(rec.render_id), 300)

    before, done = asyncio.run(go())
    assert done.state == SUCCEEDED
    after = calls(tmp_path / "store")
    redone = [t for t in set(before) if after.count(t) > 1]
    # only what was in flight at the kill (or finished in the last task-log write) may run twice
    assert len(redone) <= 6, redone
    assert after.count("face") == 1 and after.count("speech") == 1 and after.count("encode") == 1
    assert len(after) < 2 * len(set(after))  # not a second full render


def test_a_render_is_cancelled_through_its_actor_which_then_ends(local_ray, tmp_path):
    """The actor ends itself as soon as its render is over, possibly before its answer to `cancel`
    leaves it: the caller still gets CANCELLED (from the store), and the actor is gone."""
    root = str(tmp_path / "store")
    orch = ActorOrchestrator(functools.partial(make, root, 5.0))

    async def go():
        [rec] = await orch.create([SPEC])
        while "gfpgan" not in " ".join(calls(tmp_path / "store")):
            await asyncio.sleep(0.1)
        return await asyncio.wait_for(orch.cancel(rec.render_id), 120)

    done = asyncio.run(go())
    assert done.state == CANCELLED and "encode" not in calls(tmp_path / "store")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ray.get_actor(actor_name(done.render_id), namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.5)
    raise AssertionError("the cancelled render's actor is still alive")
