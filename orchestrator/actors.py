"""A replicated orchestrator on Ray: each render is driven by its own Ray actor (issue #13, item 2).

    RenderService replicas (any number, stateless)          one detached actor per render
    CreateRender: cheap checks, save QUEUED  ──────────────▶ "lihq-render-<id>" (namespace "lihq")
    GetRender / ListRenders / WatchRender: the store         runs the render with the Orchestrator
    CancelRender: the render's actor, by name                core, writing its record + task log

Ray mechanisms, and why:
- **Named actors** (`name="lihq-render-<id>"`, `get_if_exists=True`): the GCS keeps one actor per name,
  cluster-wide, so two replicas that both try to start (or resume) a render get the same actor — a
  render never runs twice, without a lease protocol of our own.
- **Detached lifetime**: the actor outlives the RenderService replica that created it (a replica
  restart or scale-down does not stop renders); the actor ends itself when its render is finished.
- **max_restarts=-1**: when the actor's process or node dies, Ray restarts it (on another node when the
  node is gone). The actor resumes in its constructor: it reads the record and the task log from the
  store and recomputes nothing that finished; the stage call in flight at the death runs again (its
  output is content-addressed, so the bytes are the same).
- **Scheduling**: each actor asks for `num_cpus` (default 0.05) of the cluster; the Ray scheduler places
  render actors across nodes, and an actor that does not fit waits PENDING_CREATION (Ray's own queue).
  A `resources` requirement (e.g. {"lihq_render": 1} declared per node) bounds renders per node.

Node death: the actors on that node are restarted elsewhere by the GCS (after its health check marks
the node dead, ~30 s by default); each resumes from the store. Renders on other nodes are unaffected.
The RenderService replicas hold no render state, so losing one loses nothing. Scale: 20 replicas in
front and thousands of render actors spread over the nodes; per render the control-plane work is the
actor's own (bench/control_plane_bench.py measures one process driving renders: tasks_per_s_by_replicas).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from lihq.errors import NotFound
from orchestrator.core import Admission, Orchestrator
from orchestrator.state import TERMINAL, RenderRecord

NAMESPACE = "lihq"


def actor_name(render_id: str) -> str:
    return f"lihq-render-{render_id}"


class RenderDriver:
    """The body of a render actor: an event loop in a thread drives one render with an Orchestrator
    made by `make` (its store and executor); the render resumes from the store as the driver starts."""

    def __init__(self, make: Callable[[], Orchestrator], render_id: str, on_end: Callable[[], None]) -> None:
        self.render_id = render_id
        self._on_end = on_end
        self._loop = asyncio.new_event_loop()
        self._orch: Orchestrator | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(make,), daemon=True, name="render")
        self._thread.start()
        self._ready.wait(60)

    def _main(self, make: Callable[[], Orchestrator]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._drive(make))
        finally:
            self._on_end()

    async def _drive(self, make: Callable[[], Orchestrator]) -> None:
        orch = self._orch = make()
        try:
            rec = await orch.fetch(self.render_id)
        except NotFound:
            self._ready.set()
            return
        if rec.state not in TERMINAL:
            rec.state = "QUEUED"
            orch.start(rec)
        self._ready.set()
        await orch.wait(self.render_id)
        await orch.aclose()

    def cancel(self) -> str:
        """Cancel the render (from any thread); its final state."""
        if self._orch is None or not self._loop.is_running():
            return ""
        fut = asyncio.run_coroutine_threadsafe(self._orch.cancel(self.render_id), self._loop)
        return fut.result(60).state

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def render_actor_class(num_cpus: float = 0.05, resources: dict[str, float] | None = None) -> Any:
    import ray

    @ray.remote(num_cpus=num_cpus, resources=resources or {}, max_restarts=-1, max_task_retries=-1)
    class RenderActor:
        def __init__(self, make: Callable[[], Orchestrator], render_id: str) -> None:
            self.driver = RenderDriver(make, render_id, self._exit)

        def _exit(self) -> None:
            import ray

            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

        def cancel(self) -> str:
            return self.driver.cancel()

        def ping(self) -> str:
            return self.driver.render_id

    return RenderActor


class ActorOrchestrator(Orchestrator):
    """The Orchestrator of a stateless RenderService replica: creation, listing and reads as usual, but
    every render runs in its own named, detached, restartable Ray actor (`make` builds the actor's own
    Orchestrator, e.g. `functools.partial(make_orchestrator, args)`). Needs `ray.init` done."""

    def __init__(self, make: Callable[[], Orchestrator], actor_options: dict[str, Any] | None = None) -> None:
        local = make()
        super().__init__(
            local.renders.store,
            local.executor,
            local.limits,
            local.retry,
            synthetic=local.synthetic,
            admission=Admission(
                max_renders_per_request=local.admission.max_renders_per_request,
                max_running=10**9,  # Ray schedules the actors: no per-replica cap
                max_queued=local.admission.max_queued,
            ),
        )
        self._make = make
        self._unlaunched: list[RenderRecord] = []
        self._actor_cls = render_actor_class(**(actor_options or {}))

    def _enqueue(self, rec: RenderRecord) -> None:
        if rec.state not in TERMINAL:
            self._unlaunched.append(rec)

    def _pump(self) -> None:
        """Launch the actors of renders whose record is in the store on its own (a new render's is
        written just after CreateRender answers: the actor's first write must come after it)."""
        waiting = []
        for rec in self._unlaunched:
            if rec.saved_state in TERMINAL:  # cancelled through another replica before it was written
                continue
            if rec.saved_state:
                self.launch(rec.render_id)
            else:
                waiting.append(rec)
        self._unlaunched = waiting

    def launch(self, render_id: str) -> Any:
        """The render's actor: created if missing, else the running one (never two)."""
        return self._actor_cls.options(
            name=actor_name(render_id), namespace=NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote(self._make, render_id)

    def unfinished_count(self, tenant: str | None = None) -> int:
        return 0  # no render lives in this replica; tenant quotas count the store (see the README)

    async def cancel(self, render_id: str) -> RenderRecord:
        """Cancel through the render's actor. The actor ends itself once its render is over, which may
        be before its answer to `cancel` leaves it (ActorDiedError): the store then says how it ended.
        An actor that died otherwise is restarted by Ray and resumes the render: cancel that one."""
        import ray
        from ray.exceptions import RayActorError

        if any(r.render_id == render_id for r in self._unlaunched):
            await self._commit.drain()  # created here a moment ago: its actor is launched once it is written
        for _ in range(3):
            try:
                actor = ray.get_actor(actor_name(render_id), namespace=NAMESPACE)
            except ValueError:
                return await super().cancel(render_id)  # no actor: finished, or never started
            try:
                await asyncio.to_thread(ray.get, actor.cancel.remote(), timeout=120)
            except RayActorError:
                pass
            rec = await self.fetch(render_id)
            if rec.state in TERMINAL:
                return rec
            await asyncio.sleep(1.0)
        return await self.fetch(render_id)

    def watch(self, render_id: str, timeout_s: float = 5.0):
        return super().watch(render_id, min(timeout_s, 1.0))  # the actor writes; this replica polls

    async def wait(self, render_id: str) -> RenderRecord:
        while True:
            rec = await self.fetch(render_id)
            if rec.state in TERMINAL:
                return rec
            await asyncio.sleep(0.2)
