"""The orchestrator: creates renders (validating at creation), runs them, persists, resumes, cancels.

Transport-free: RenderService (orchestrator/servicer.py) and the CLI call this. Stage work goes through
an `Executor` (orchestrator/executor.py calls the stage services over gRPC). Creation runs the cheap
checks synchronously — ingest and probe the inputs, find the face, check a reference video is long
enough — so bad input comes back as INVALID_ARGUMENT at once and nothing half-done is left behind;
their results are kept and not recomputed by the render.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from lihq.errors import Cancelled, InvalidInput, LihqError, NotFound
from lihq.grpc.errors import as_lihq_error
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore
from orchestrator.plan import Plan, Task, build_plan
from orchestrator.scheduler import (
    Executor,
    Limits,
    RetryPolicy,
    Scheduler,
    TaskFailed,
    TaskResult,
    call_with_retry,
)
from orchestrator.spec import RenderSpec, check, with_defaults
from orchestrator.state import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    RenderRecord,
    RenderStore,
    new_render_id,
)
from orchestrator.webhook import WebhookConfig, WebhookSender, validate_webhook_url

log = logging.getLogger("lihq.orchestrator")
PRECHECK = ("face", "speech", "reference")  # global tasks run at creation when the spec has them


class Orchestrator:
    def __init__(
        self,
        store: ObjectStore,
        executor: Executor,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        synthetic: bool = False,
        on_finished: Callable[[RenderRecord], None] | None = None,
        webhooks: WebhookConfig | None = None,
    ) -> None:
        self.renders = RenderStore(store)
        self.executor, self.limits, self.retry = executor, limits or Limits(), retry or RetryPolicy()
        self.synthetic = synthetic
        self.on_finished = on_finished
        self.webhooks = WebhookSender(webhooks or WebhookConfig.from_env(), self.renders)
        self._running: dict[str, tuple[asyncio.Task, Scheduler | None]] = {}
        self._changed: dict[str, asyncio.Condition] = {}
        self._user_cancelled: set[str] = set()
        self._creating: dict[str, tuple[asyncio.Lock, int]] = {}  # idempotency key -> (lock, users)

    # -- creation -----------------------------------------------------------------------------
    async def create(
        self, specs: list[RenderSpec], idempotency_key: str = "", webhook_url: str = ""
    ) -> list[RenderRecord]:
        if not specs:
            raise InvalidInput("a request needs at least one render")
        webhook_url = validate_webhook_url(webhook_url, self.webhooks.cfg.allow_hosts)
        async with self._creating_with(idempotency_key):
            known = self.renders.lookup_idempotent(idempotency_key)
            if known is not None:
                return [self.renders.load(rid) for rid in known]
            specs = [check(with_defaults(s)) for s in specs]
            records = []
            for i, spec in enumerate(specs):
                rec = RenderRecord(new_render_id(), spec, synthetic=self.synthetic, webhook_url=webhook_url)
                try:
                    await self._precheck(rec)
                except LihqError as exc:
                    prefix = f"render {i + 1} of {len(specs)}: " if len(specs) > 1 else ""
                    raise type(exc)(prefix + exc.message) from exc
                records.append(rec)
            for rec in records:  # only now is anything persisted: a bad request leaves nothing behind
                self.renders.save(rec)
            self.renders.remember_idempotent(idempotency_key, [r.render_id for r in records])
        for rec in records:
            self.start(rec)
        return records

    @contextlib.asynccontextmanager
    async def _creating_with(self, idempotency_key: str) -> AsyncIterator[None]:
        """Serialize creations that share an idempotency key: the creation checks take a while, and a
        concurrent call with the same key must wait and find the renders of the first, not make its own.
        In-process only (the orchestrator runs as one replica); the lock is dropped when unused."""
        if not idempotency_key:
            yield
            return
        lock, users = self._creating.get(idempotency_key, (asyncio.Lock(), 0))
        self._creating[idempotency_key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._creating[idempotency_key]
            if users > 1:
                self._creating[idempotency_key] = (lock, users - 1)
            else:
                del self._creating[idempotency_key]

    async def _precheck(self, rec: RenderRecord) -> None:
        plan = build_plan(rec.spec, audio_duration_s=1.0)  # the globals do not depend on the length
        for tid in PRECHECK:
            if tid in plan.tasks:
                task = plan.tasks[tid]
                deps = {d: TaskResult(rec.results[d]) for d in task.deps}
                res = await call_with_retry(self._executor_for(rec), task, deps, self.limits, self.retry)
                rec.results[tid] = dict(res.outputs)
        speech = rec.results.get("speech", {})
        ref = rec.results.get("reference", {})
        if ref and speech.get("duration_s"):
            need = rec.spec.reference_offset_s + float(speech["duration_s"])
            if float(ref["duration_s"]) + 1e-3 < need:
                raise InvalidInput(
                    f"the reference video lasts {float(ref['duration_s']):.2f} s; offset "
                    f"{rec.spec.reference_offset_s:.2f} s + speech {float(speech['duration_s']):.2f} s needs "
                    f"{need:.2f} s (use a smaller offset or a longer video)"
                )

    # -- running ------------------------------------------------------------------------------
    def start(self, rec: RenderRecord) -> None:
        if rec.render_id in self._running or rec.state in TERMINAL:
            return
        self._running[rec.render_id] = (asyncio.create_task(self._run(rec)), None)

    def _plan(self, rec: RenderRecord) -> Plan:
        speech = rec.results.get("speech")
        if speech is None:  # text: synthesize first, the plan's length depends on it
            raise RuntimeError("speech result missing")
        return build_plan(rec.spec, float(speech["duration_s"]))

    def _executor_for(self, rec: RenderRecord) -> Executor:
        """Executors that need the render (its id for output keys, synthetic mode) expose for_render."""
        bind = getattr(self.executor, "for_render", None)
        return bind(rec) if bind is not None else self.executor

    async def _ensure_speech(self, rec: RenderRecord) -> None:
        if "speech" not in rec.results:
            plan = build_plan(rec.spec, 1.0)
            task = plan.tasks["speech"]
            res = await call_with_retry(self._executor_for(rec), task, {}, self.limits, self.retry)
            rec.results["speech"] = dict(res.outputs)
            self.renders.save(rec)

    async def _run(self, rec: RenderRecord) -> None:
        slog = stage_logger("orchestrator", render_id=rec.render_id)
        rec.state = RUNNING
        self.renders.save(rec)
        await self._notify(rec.render_id)
        try:
            await self._ensure_speech(rec)
            plan = self._plan(rec)
            executor = self._executor_for(rec)
            sched = Scheduler(plan, executor, self.limits, self.retry, rec.task_results(), self._saver(rec))
            self._running[rec.render_id] = (self._running[rec.render_id][0], sched)
            self._progress(rec, sched)
            results = await sched.run()
            rec.output_key = results["encode"].outputs["video"]
            rec.state = SUCCEEDED
            slog.info("render succeeded: %s", rec.output_key)
        except asyncio.CancelledError:
            if rec.render_id not in self._user_cancelled:
                # the orchestrator is shutting down: leave the render RUNNING so a restart resumes it
                self.renders.save(rec)
                self._running.pop(rec.render_id, None)
                raise
            rec.state, rec.error = CANCELLED, "cancelled"
        except Cancelled:
            rec.state, rec.error = CANCELLED, "cancelled"
        except TaskFailed as exc:
            rec.state, rec.error, rec.error_code, rec.error_stage = (
                FAILED,
                exc.message,
                exc.code,
                exc.task.stage,
            )
            slog.info("render failed at %s: %s", exc.task.id, exc.error.message)
        except Exception as exc:  # noqa: BLE001 - any other failure is recorded, never lost
            err = as_lihq_error(exc)
            rec.state, rec.error, rec.error_code = FAILED, err.message, err.code
            slog.exception("render failed")
        finally:
            self.renders.save(rec)
            self._running.pop(rec.render_id, None)
            await self._notify(rec.render_id)
            if rec.state in TERMINAL:
                self.webhooks.schedule(rec)
            if self.on_finished is not None and rec.state in TERMINAL:
                self.on_finished(rec)

    def _progress(self, rec: RenderRecord, sched: Scheduler) -> None:
        p = sched.progress
        rec.progress = {s: [p.done.get(s, 0), t] for s, t in sorted(p.total.items())}
        rec.eta_s = p.eta_s(self.limits)

    def _saver(self, rec: RenderRecord):
        async def on_done(task: Task, res: TaskResult) -> None:
            rec.results[task.id] = dict(res.outputs)
            sched = self._running.get(rec.render_id, (None, None))[1]
            if sched is not None:
                self._progress(rec, sched)
            self.renders.save(rec)
            await self._notify(rec.render_id)

        return on_done

    async def resume_all(self) -> list[str]:
        """Restart every render a previous orchestrator left QUEUED or RUNNING."""
        resumed = []
        for rec in self.renders.list():
            if rec.state in (QUEUED, RUNNING):
                rec.state = QUEUED
                self.start(rec)
                resumed.append(rec.render_id)
        return resumed

    async def wait(self, render_id: str) -> RenderRecord:
        entry = self._running.get(render_id)
        if entry is not None:
            await asyncio.gather(entry[0], return_exceptions=True)
        return self.renders.load(render_id)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Give webhook deliveries in flight up to `timeout_s` to finish (renders are left as they are)."""
        await self.webhooks.aclose(timeout_s)

    # -- queries and control ----------------------------------------------------------------------
    def get(self, render_id: str) -> RenderRecord:
        return self.renders.load(render_id)

    def list(self, state: str = "") -> list[RenderRecord]:
        return [r for r in self.renders.list() if not state or r.state == state]

    async def cancel(self, render_id: str) -> RenderRecord:
        rec = self.renders.load(render_id)
        entry = self._running.get(render_id)
        if entry is not None:
            self._user_cancelled.add(render_id)
            task, sched = entry
            if sched is not None:
                sched.cancel()
            else:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return self.renders.load(render_id)
        if rec.state not in TERMINAL:
            rec = replace(rec, state=CANCELLED, error="cancelled")
            self.renders.save(rec)
            self.webhooks.schedule(rec)
        return rec

    def _cond(self, render_id: str) -> asyncio.Condition:
        return self._changed.setdefault(render_id, asyncio.Condition())

    async def _notify(self, render_id: str) -> None:
        cond = self._cond(render_id)
        async with cond:
            cond.notify_all()

    async def watch(self, render_id: str, timeout_s: float = 5.0) -> AsyncIterator[RenderRecord]:
        """Yield the record now and after every change, until it reaches a terminal state."""
        rec = self.renders.load(render_id)
        yield rec
        while rec.state not in TERMINAL:
            cond = self._cond(render_id)
            async with cond:
                try:
                    await asyncio.wait_for(cond.wait(), timeout_s)
                except TimeoutError:
                    pass
            try:
                rec = self.renders.load(render_id)
            except NotFound:
                return
            yield rec
