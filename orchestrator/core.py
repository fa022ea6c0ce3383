"""The orchestrator: creates renders (validating at creation), runs them, persists, resumes, cancels.

Transport-free: RenderService (orchestrator/servicer.py) and the CLI call this. Stage work goes through
an `Executor` (orchestrator/executor.py calls the stage services over gRPC). Creation does cheap checks
only and saves the renders QUEUED by group commit; the expensive checks (face, speech, reference) are
each render's first tasks (orchestrator/README.md, "Control plane").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lihq.errors import Cancelled, InvalidInput, LihqError, NotFound, ResourceExhausted
from lihq.grpc.errors import as_lihq_error
from lihq.log import stage_logger
from lihq.storage.base import ObjectStore, validate_key
from orchestrator.hls import PlaylistPublisher, created_unix, playlist_key
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
from orchestrator.spec import RenderSpec, check, resolve_reference_offset, with_defaults
from orchestrator.state import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    CorruptRecord,
    RenderRecord,
    RenderStore,
    new_render_id,
    now,
)
from orchestrator.webhook import WebhookConfig, WebhookSender, validate_webhook_url

log = logging.getLogger("lihq.orchestrator")
PRECHECK = ("face", "speech", "reference")  # global tasks run at creation when the spec has them


def _field_message(tid: str, spec: RenderSpec, message: str) -> str:
    """A creation-check error named after the user's field ("face", "audio", "reference video")."""
    what = {"face": "face", "reference": "reference video"}.get(tid) or (
        "audio" if spec.audio_key else "text"
    )
    for word in ("upload: ", "upload ", "source: ", "image: ", "video: ", "audio: "):
        if message.startswith(word):
            message = message[len(word) :]
            break
    return message if message.startswith(what) else f"{what}: {message}"


@dataclass(frozen=True)
class Admission:
    """Bounds on the work one orchestrator (replica) takes on; see orchestrator/README.md."""

    max_renders_per_request: int = 100  # more: INVALID_ARGUMENT
    max_running: int = 32  # renders driven at once; the rest wait QUEUED, first in first out
    max_queued: int = 10_000  # a request that would queue more: RESOURCE_EXHAUSTED
    progress_interval_s: float = 0.5  # render.json is rewritten for progress at most this often
    check_inputs: bool = False  # stat every input key at creation (a missing one: INVALID_ARGUMENT)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Admission:
        """LIHQ_MAX_RENDERS_PER_REQUEST, LIHQ_MAX_RUNNING_RENDERS, LIHQ_MAX_QUEUED_RENDERS."""
        env = os.environ if env is None else env
        names = {
            "max_renders_per_request": "LIHQ_MAX_RENDERS_PER_REQUEST",
            "max_running": "LIHQ_MAX_RUNNING_RENDERS",
            "max_queued": "LIHQ_MAX_QUEUED_RENDERS",
        }
        vals: dict[str, Any] = {}
        for attr, var in names.items():
            if env.get(var):
                try:
                    vals[attr] = int(env[var])
                except ValueError:
                    raise InvalidInput(f"{var}={env[var]!r}: expected a whole number") from None
                if vals[attr] < 1:
                    raise InvalidInput(f"{var}={env[var]!r}: must be at least 1")
        vals.update(overrides)
        return cls(**vals)


@functools.cache
def _store_pool() -> ThreadPoolExecutor:
    """Threads for store I/O: blocking calls that mostly wait (fsync, S3 round trips), so many at once."""
    return ThreadPoolExecutor(
        int(os.environ.get("LIHQ_STORE_THREADS", "32")), thread_name_prefix="lihq-store"
    )


async def store_io(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking store call off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_store_pool(), functools.partial(fn, *args))


@functools.cache
def _creation_threads(role: str, overlap: bool = True) -> ThreadPoolExecutor:
    """CreateRender's own threads, apart from the render journals' `_store_pool` (a creation never queues
    behind running renders' writes): role "lihq-create" runs its store calls (reference checks, the
    group commit's batches), "lihq-create-write" a lone creation's parallel object writes on S3 (a
    separate pool, so a batch waiting on its writes never holds the threads they need).
    `LIHQ_CREATE_THREADS`, else 32 where the calls wait on the network (`overlap`: S3 round trips,
    DNS) and two per core (4 to 32) where they are this process's CPU (the file store): on 2 cores
    32 threads there cost 2.5 CPU ms per creation against 1.8 with 4 (a burst of 100 in one process;
    bench/README.md)."""
    default = 32 if overlap else min(32, max(4, 2 * (os.cpu_count() or 2)))
    n = int(os.environ.get("LIHQ_CREATE_THREADS") or default)
    return ThreadPoolExecutor(n, thread_name_prefix=role)


async def create_io(store: ObjectStore | None, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking call of creation off the event loop, on the creation threads sized for `store`'s
    calls (None: a network call that is not the store's, e.g. resolving a webhook's host)."""
    pool = _creation_threads("lihq-create", store is None or store.concurrent_calls_help)
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))


class _GroupCommit:
    """New renders are saved by group commit: the creations that arrive while a batch is being written
    form the next batch, one creation thread writes it, and each caller is answered as its writes (then
    its idempotency key) land, so an answered CreateRender is as durable as the store's writes; the
    event loop spends one thread hop per batch and one wake-up per caller.

    A batch of a burst (or of more than `DIRECT_MAX` renders) is written as ONE object, the creation
    journal (`RenderStore.write_journal`): one write per batch instead of three per render (record +
    two index entries). One task then writes its records out on their own (`RenderStore.materialize`),
    batch after batch, once creations pause for `SETTLE_S` or the oldest batch has waited
    `MAX_DELAY_S` (a burst is answered before this bookkeeping, and a steady stream still gets it
    done; a large request that is not part of a burst at once). A lone creation of `DIRECT_MAX`
    renders or fewer skips the journal: three writes per render cost less than five (journal, record,
    two index entries, the journal's deletion). A render starts, and is cancelled or listed by this
    orchestrator, only after its record is written on its own (`stored`, `drain`): every later write
    of a record comes after its first."""

    SETTLE_S = 0.02
    MAX_DELAY_S = 0.25
    DIRECT_MAX = 2  # a lone creation of this many renders or fewer skips the journal

    def __init__(
        self,
        renders: RenderStore,
        on_stored: Callable[[], None],
        on_ended_elsewhere: Callable[[RenderRecord], None],
    ) -> None:
        self.renders, self.on_stored, self.on_ended_elsewhere = renders, on_stored, on_ended_elsewhere
        self._pending: list[tuple[list[RenderRecord], str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task | None = None
        self._journaled: deque[tuple[str, list[RenderRecord], float]] = deque()  # (journal, records, when)
        self._materializer: asyncio.Task | None = None
        self._last_commit = 0.0
        self._in_burst = False
        self._urgent = 0
        self._idle: asyncio.Event | None = None  # made on first use, in the loop that uses it

    async def commit(self, records: list[RenderRecord], idempotency_key: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((records, idempotency_key, fut))
        t = time.monotonic()
        self._in_burst = t - self._last_commit < self.SETTLE_S  # the call before came just now
        self._last_commit = t
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._run())
        await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                records = sum(len(recs) for recs, _, _ in batch)
                direct = records <= self.DIRECT_MAX and not self._in_burst
                await create_io(self.renders.store, self._write_batch, batch, loop, direct)
            except Exception as exc:  # noqa: BLE001 - every caller still waiting gets the error
                for _, _, fut in batch:
                    _settle(fut, exc)

    def _write_batch(
        self, batch: list[tuple[list[RenderRecord], str, asyncio.Future[None]]], loop, direct: bool
    ) -> None:
        """In a creation thread: the batch's journal (`direct`: a lone creation's records and index
        entries themselves), then each caller's idempotency key; each caller is answered as its own
        writes land (a journal that fails fails them all)."""
        stamp = now()
        records = [rec for recs, _, _ in batch for rec in recs]
        for rec in records:
            rec.updated_at = stamp
        if direct:  # on S3 at once, on threads of their own; on a local disk one by one, here
            self.renders.save_new(records, _creation_threads("lihq-create-write"))
        else:
            journal = self.renders.write_journal(records)
            # before any caller is answered (callbacks run in order): the batch is due to be written out
            loop.call_soon_threadsafe(self._journaled_batch, journal, records)
        for recs, key, fut in batch:
            error: BaseException | None = None
            try:
                if key:
                    self.renders.remember_idempotent(key, [r.render_id for r in recs])
            except Exception as exc:  # noqa: BLE001 - this caller's error, the others go on
                error = exc
            loop.call_soon_threadsafe(_settle, fut, error)

    def _journaled_batch(self, journal: str, records: list[RenderRecord]) -> None:
        # a lone creation is written out at once; one of a burst waits for the burst to pause
        self._journaled.append((journal, records, time.monotonic() if self._in_burst else 0.0))
        self._idle_event().clear()
        if self._materializer is None or self._materializer.done():
            self._materializer = asyncio.create_task(self._materialize())

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    async def _materialize(self) -> None:
        failures = 0
        while self._journaled:
            await self._settle()
            journal, records, _ = self._journaled[0]
            try:
                _, moved = await create_io(
                    self.renders.store, self.renders.materialize, journal, [r.render_id for r in records]
                )
            except Exception:  # noqa: BLE001 - the store is failing: the journal keeps them; try again
                failures += 1
                log.exception("could not write out creation journal %s (try %d)", journal, failures)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            failures = 0
            self._journaled.popleft()
            for rec in records:
                if not rec.saved_state:
                    rec.saved_state = moved.get(rec.render_id, rec.state)  # as stored
                    if rec.saved_state in TERMINAL:  # cancelled through another replica meanwhile
                        self.on_ended_elsewhere(rec)
            self.on_stored()
        self._idle_event().set()

    async def _settle(self) -> None:
        """Wait while creations keep arriving (up to `MAX_DELAY_S` from the oldest batch), unless a
        caller needs the records written now (`drain`)."""
        while not self._urgent and self._journaled[0][2]:
            t = time.monotonic()
            quiet = t - self._last_commit
            waited = t - self._journaled[0][2]
            busy = bool(self._pending) or (self._writer is not None and not self._writer.done())
            if (quiet >= self.SETTLE_S and not busy) or waited >= self.MAX_DELAY_S:
                return
            await asyncio.sleep(max(0.002, min(self.SETTLE_S - quiet, self.MAX_DELAY_S - waited)))

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Return once every record this orchestrator journaled is written on its own, or after
        `timeout_s` (the store is failing: the write-out retries, and the caller goes on with what the
        store holds)."""
        if not self._journaled:
            return
        self._urgent += 1
        try:
            await asyncio.wait_for(self._idle_event().wait(), timeout_s)
        except TimeoutError:
            log.warning("creation journals not written out after %.0f s; going on", timeout_s)
        finally:
            self._urgent -= 1

    async def stored(self, rec: RenderRecord) -> None:
        """Return once `rec` (created here) is written on its own."""
        if not rec.saved_state:
            await self.drain()


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


class _Journal:
    """One render's writes, off the event loop and O(1) per task.

    Finished tasks go to the render's task log (renders/<id>/tasks/<seq>.json) by group commit: while
    one write is in flight, completions collect and the next write carries them all, so a resumed
    render loses at most the tasks of the write in flight at a crash (as before: one task). Progress
    rewrites render.json at most once per `interval_s`. Every write of the render goes through one
    lock, in order; the store I/O runs in a worker thread (`store_io`)."""

    def __init__(self, renders: RenderStore, rec: RenderRecord, seq: int, interval_s: float) -> None:
        self.renders, self.rec, self.seq, self.interval_s = renders, rec, seq, interval_s
        self.lock = asyncio.Lock()
        self._log: dict[str, dict[str, Any]] = {}
        self._in_flight: tuple[int, dict[str, dict[str, Any]]] | None = None  # the log entry being written
        self._dirty = False
        self._last_record = 0.0
        self._kick = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def defer_record(self) -> None:
        """The record was just written: the next rewrite waits out `interval_s` like progress does."""
        self._last_record = time.monotonic()

    def record_changed(self) -> None:
        self._dirty = True
        self._wake()

    def task_done(self, task_id: str, outputs: dict[str, Any]) -> None:
        self._log[task_id] = outputs
        self._dirty = True
        self._wake()

    def _wake(self) -> None:
        self._kick.set()
        if self._writer is None and not self._closed:
            self._writer = asyncio.create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._kick.wait()
            self._kick.clear()
            if self._closed:
                return
            await self._write_log()
            if self._dirty:
                wait = self._last_record + self.interval_s - time.monotonic()
                if wait <= 0:
                    await self.save_record()
                elif self._timer is None or self._timer.cancelled() or self._timer.when() < loop.time():
                    self._timer = loop.call_later(wait, self._kick.set)  # one pending wake-up at most

    async def _write_log(self) -> None:
        async with self.lock:
            if self._log:
                batch, self._log = self._log, {}
                seq, self.seq = self.seq, self.seq + 1
                self._in_flight = (seq, batch)
                await store_io(self.renders.append_results, self.rec.render_id, seq, batch)
                self._in_flight = None

    async def save_record(self) -> None:
        """Write render.json now (and move the state index when the state changed)."""
        async with self.lock:
            rec = self.rec
            self._dirty, self._last_record = False, time.monotonic()
            rec.updated_at = now()
            body, state, saved = rec.to_json(), rec.state, rec.saved_state
            await store_io(self.renders.write, rec.render_id, body, state, saved)
            rec.saved_state = state

    async def close(self) -> None:
        """Flush the task log and stop the writer (the caller then saves the final record). A write in
        flight is awaited, never abandoned, so no older record can land after the final one."""
        self._closed = True
        self._kick.set()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._write_log()

    def close_now(self) -> None:
        """At shutdown (the loop is cancelling us): write what is pending, blocking."""
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
        if self._in_flight is not None:  # its thread may not have written it yet: the same entry again
            self.renders.append_results(self.rec.render_id, *self._in_flight)
        if self._log:
            batch, self._log = self._log, {}
            self.renders.append_results(self.rec.render_id, self.seq, batch)
            self.seq += 1
        self.renders.save(self.rec)


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
        admission: Admission | None = None,
    ) -> None:
        self.renders = RenderStore(store)
        self.executor, self.limits, self.retry = executor, limits or Limits(), retry or RetryPolicy()
        self.synthetic = synthetic
        self.on_finished = on_finished
        self.admission = admission or Admission()
        self.webhooks = WebhookSender(webhooks or WebhookConfig.from_env(), self.renders)
        self._live: dict[str, RenderRecord] = {}  # renders this orchestrator owns: queued or running
        self._live_by_tenant: Counter[str] = Counter()  # of _live, for quotas
        self._queue: OrderedDict[str, RenderRecord] = OrderedDict()  # waiting for a running slot, FIFO
        self._running: dict[str, tuple[asyncio.Task, Scheduler | None]] = {}
        self._changed: dict[str, asyncio.Condition] = {}
        self._user_cancelled: set[str] = set()
        self._fresh: set[str] = set()  # created by this orchestrator, not started yet: no task log to read
        self._creating: dict[str, tuple[asyncio.Lock, int]] = {}  # idempotency key -> (lock, users)
        self._commit = _GroupCommit(self.renders, self._pump, self._ended_elsewhere)

    # -- creation -----------------------------------------------------------------------------
    async def create(
        self, specs: list[RenderSpec], idempotency_key: str = "", webhook_url: str = "", tenant: str = ""
    ) -> list[RenderRecord]:
        """Cheap checks only (the spec, the webhook URL, bounds, optionally that the input keys exist),
        then the renders are saved QUEUED and this returns: the expensive checks (face detection,
        speech synthesis, probing the reference video) are each render's first tasks, and a bad input
        found there fails that render with INVALID_ARGUMENT and the stage (orchestrator/README.md)."""
        adm = self.admission
        if not specs:
            raise InvalidInput("renders: a request needs at least one render")
        if len(specs) > adm.max_renders_per_request:
            raise InvalidInput(
                f"renders: {len(specs)} renders in one request; at most {adm.max_renders_per_request} "
                "(split it into several requests)"
            )
        # resolves the host (refusing internal addresses): a blocking lookup, off the event loop
        if webhook_url.strip():
            webhook_url = await create_io(
                None, validate_webhook_url, webhook_url, self.webhooks.cfg.allow_hosts
            )
        else:
            webhook_url = ""
        async with self._creating_with(idempotency_key):
            if idempotency_key:
                known = await create_io(self.renders.store, self.renders.lookup_idempotent, idempotency_key)
                if known is not None:
                    return [await self.fetch(rid) for rid in known]
            checked = []
            for i, s in enumerate(specs):
                try:
                    checked.append(check(with_defaults(s)))
                except LihqError as exc:
                    prefix = f"render {i + 1} of {len(specs)}: " if len(specs) > 1 else ""
                    raise type(exc)(prefix + exc.message) from exc
            if adm.check_inputs:
                await create_io(self.renders.store, self._check_inputs, checked)
            if len(self._queue) + len(checked) > adm.max_queued:
                raise ResourceExhausted(
                    f"{len(self._queue)} renders are queued on this orchestrator (at most "
                    f"{adm.max_queued}); retry later"
                )
            records = [
                RenderRecord(
                    new_render_id(), spec, synthetic=self.synthetic, webhook_url=webhook_url, tenant=tenant
                )
                for spec in checked
            ]
            await self._save_new(records, idempotency_key)
        for rec in records:
            self._enqueue(rec)
        self._pump()
        return records

    async def _save_new(self, records: list[RenderRecord], idempotency_key: str) -> None:
        """Every record with its index entries, then the idempotency key, by group commit."""
        await self._commit.commit(records, idempotency_key)
        self._fresh.update(r.render_id for r in records)

    def _check_inputs(self, specs: list[RenderSpec]) -> None:
        """Every input key names an object in the store (a stat each: no download, no decoding)."""
        store = self.renders.store
        for i, spec in enumerate(specs):
            prefix = f"render {i + 1} of {len(specs)}: " if len(specs) > 1 else ""
            for field_name, key in (
                ("face", spec.face_key),
                ("audio", spec.audio_key),
                ("reference_video", spec.reference_video_key),
                ("background.image", spec.background.image_key),
                ("background.video", spec.background.video_key),
            ):
                if not key:
                    continue
                try:
                    info = store.stat(validate_key(key))
                except NotFound:
                    raise InvalidInput(f"{prefix}{field_name}: no object {key!r} in the store") from None
                if info.size == 0:
                    raise InvalidInput(f"{prefix}{field_name}: object {key!r} is empty")

    @contextlib.asynccontextmanager
    async def _creating_with(self, idempotency_key: str) -> AsyncIterator[None]:
        """Serialize creations that share an idempotency key: a concurrent call with the same key must
        wait and find the renders of the first, not make its own. The lock is dropped when unused."""
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

    # -- queue ----------------------------------------------------------------------------------
    def _enqueue(self, rec: RenderRecord) -> None:
        if rec.render_id in self._live or rec.state in TERMINAL:
            return
        self._live[rec.render_id] = rec
        self._live_by_tenant[rec.tenant] += 1
        self._queue[rec.render_id] = rec

    def _pump(self) -> None:
        """Start queued renders, oldest first, while running slots are free (a render whose record is
        still only in the creation journal waits: the group commit pumps again once it is written)."""
        while self._queue and len(self._running) < self.admission.max_running:
            if not next(iter(self._queue.values())).saved_state:
                break
            _, rec = self._queue.popitem(last=False)
            self._running[rec.render_id] = (asyncio.create_task(self._run(rec)), None)

    def queue_position(self, render_id: str) -> int:
        """1 = the next render to start on this orchestrator; 0 = not queued here."""
        for i, rid in enumerate(self._queue, 1):
            if rid == render_id:
                return i
        return 0

    def unfinished_count(self, tenant: str | None = None) -> int:
        """Renders this orchestrator queues or runs (of `tenant` when given): memory only, no store I/O."""
        if tenant is None:
            return len(self._live)
        return self._live_by_tenant[tenant]

    def _unlive(self, render_id: str) -> None:
        rec = self._live.pop(render_id, None)
        if rec is not None:
            self._live_by_tenant[rec.tenant] -= 1
            if not self._live_by_tenant[rec.tenant]:
                del self._live_by_tenant[rec.tenant]

    def start(self, rec: RenderRecord) -> None:
        """Queue `rec` (a record loaded from the store) and start it when a slot is free."""
        self._enqueue(rec)
        self._pump()

    # -- running ------------------------------------------------------------------------------
    def _plan(self, rec: RenderRecord) -> Plan:
        speech = rec.results.get("speech")
        if speech is None:
            raise RuntimeError("speech result missing")
        # a face video's plan needs the face task's result (its frame rate and size)
        return build_plan(rec.spec, float(speech["duration_s"]), rec.results.get("face"))

    def _executor_for(self, rec: RenderRecord) -> Executor:
        """Executors that need the render (its id for output keys, synthetic mode) expose for_render."""
        bind = getattr(self.executor, "for_render", None)
        return bind(rec) if bind is not None else self.executor

    async def _first_tasks(self, rec: RenderRecord, journal: _Journal) -> None:
        """The checks CreateRender no longer waits for — face detection, the speech (synthesis or
        ingest), the reference video's probe — and the reference-length check, as the render's first
        tasks. A failure names its task and stage, with the task's own code (INVALID_ARGUMENT)."""
        plan = build_plan(rec.spec, audio_duration_s=1.0)  # the globals do not depend on the length
        executor = self._executor_for(rec)
        for tid in PRECHECK:
            if tid not in plan.tasks or tid in rec.results:
                continue
            task = plan.tasks[tid]
            deps = {d: TaskResult(rec.results[d]) for d in task.deps}
            try:
                res = await call_with_retry(executor, task, deps, self.limits, self.retry)
            except LihqError as exc:
                raise TaskFailed(task, exc, 1) from exc
            rec.results[tid] = dict(res.outputs)
            journal.task_done(tid, rec.results[tid])
        speech = rec.results.get("speech", {})
        ref = rec.results.get("reference", {})
        if ref and speech.get("duration_s"):
            # --offset random: the start is chosen now that both lengths are known (same seed, same start)
            # and kept in the record's spec, which Render.spec reports (orchestrator/spec.py)
            rec.spec = resolve_reference_offset(
                rec.spec, float(ref["duration_s"]), float(speech["duration_s"])
            )
            need = rec.spec.reference_offset_s + float(speech["duration_s"])
            if float(ref["duration_s"]) + 1e-3 < need:
                raise TaskFailed(
                    plan.tasks["reference"],
                    InvalidInput(
                        f"the reference video lasts {float(ref['duration_s']):.2f} s; offset "
                        f"{rec.spec.reference_offset_s:.2f} s + speech {float(speech['duration_s']):.2f} s "
                        f"needs {need:.2f} s (use a smaller offset or a longer video)"
                    ),
                    1,
                )

    async def _run(self, rec: RenderRecord) -> None:
        slog = stage_logger("orchestrator", render_id=rec.render_id)
        rid = rec.render_id
        journal: _Journal | None = None
        try:
            fresh = rid in self._fresh
            if fresh:  # created here: no task log yet
                self._fresh.discard(rid)
                done, seq = {}, 0
            else:
                done, seq = await store_io(self._resume_point, rid)
            rec.results = {**done, **rec.results}
            journal = _Journal(self.renders, rec, seq, self.admission.progress_interval_s)
            if fresh:
                # just saved QUEUED: RUNNING is written with the first progress, not at once (a burst of
                # creations is not slowed by the renders it starts; a crash meanwhile resumes it queued)
                journal.defer_record()
            rec.state = RUNNING
            journal.record_changed()  # written by the journal's writer, in order, while the render runs
            await self._notify(rid)
            await self._first_tasks(rec, journal)
            plan = self._plan(rec)
            hls = self._playlist(rec, plan, journal)
            sched = Scheduler(
                plan, self._executor_for(rec), self.limits, self.retry, rec.task_results(), None
            )
            sched.on_done = self._on_done(rec, sched, journal, hls)
            self._running[rid] = (self._running[rid][0], sched)
            self._progress(rec, sched)
            results = await sched.run()
            await hls.end()  # #EXT-X-ENDLIST: every segment is listed
            rec.output_key = results["encode"].outputs["video"]
            rec.state = SUCCEEDED
            slog.info("render succeeded: %s", rec.output_key)
        except asyncio.CancelledError:
            if rid not in self._user_cancelled:
                # the orchestrator is shutting down: leave the render RUNNING so a restart resumes it
                with contextlib.suppress(Exception):
                    if journal is not None:
                        journal.close_now()
                self._running.pop(rid, None)
                self._unlive(rid)
                raise
            rec.state, rec.error = CANCELLED, "cancelled"
        except Cancelled:
            rec.state, rec.error = CANCELLED, "cancelled"
        except TaskFailed as exc:
            message = exc.message
            if exc.task.id in ("face", "speech", "reference") and exc.code == "INVALID_ARGUMENT":
                message = _field_message(exc.task.id, rec.spec, exc.error.message)  # the user's field
            rec.state, rec.error, rec.error_code, rec.error_stage = (
                FAILED,
                message,
                exc.code,
                exc.task.stage,
            )
            slog.info("render failed at %s: %s", exc.task.id, exc.error.message)
        except Exception as exc:  # noqa: BLE001 - any other failure is recorded, never lost
            err = as_lihq_error(exc)
            rec.state, rec.error, rec.error_code = FAILED, err.message, err.code
            slog.exception("render failed")
        await self._finish(rec, journal)

    def _resume_point(self, render_id: str) -> tuple[dict[str, dict[str, Any]], int]:
        """What finished before (the task log) and its next sequence number: one listing."""
        return self.renders.load_results(render_id), self.renders.log_length(render_id)

    async def _finish(self, rec: RenderRecord, journal: _Journal | None) -> None:
        rid = rec.render_id
        try:
            if journal is None:
                journal = _Journal(self.renders, rec, 0, self.admission.progress_interval_s)
            await journal.close()
            await journal.save_record()
        except Exception:  # noqa: BLE001 - the store is down: the next orchestrator resumes the render
            stage_logger("orchestrator", render_id=rid).exception("could not record the render's end")
        finally:
            self._running.pop(rid, None)
            self._unlive(rid)
            self._user_cancelled.discard(rid)
            self._pump()
        await self._notify(rid)
        if rec.state in TERMINAL:
            self.webhooks.schedule(rec)
            if self.on_finished is not None:
                self.on_finished(rec)

    def _progress(self, rec: RenderRecord, sched: Scheduler) -> None:
        p = sched.progress
        rec.progress = {s: [p.done.get(s, 0), t] for s, t in sorted(p.total.items())}
        rec.eta_s = p.eta_s(self.limits)

    def _playlist(self, rec: RenderRecord, plan: Plan, journal: _Journal) -> PlaylistPublisher:
        """The render's HLS playlist (orchestrator/hls.py): on its first listed segment, Render.playlist
        and first_playable_s are set (once: a resumed render keeps its first figure)."""
        rid = rec.render_id

        def on_first() -> None:
            if not rec.playlist_key:
                rec.playlist_key = playlist_key(rid)
                rec.first_playable_s = max(0.0, time.time() - created_unix(rid, rec.created_at))
                journal.record_changed()
                asyncio.get_running_loop().create_task(self._notify(rid))

        hls = PlaylistPublisher(self.renders.store, rid, plan, store_io, on_first)
        hls.seed(rec.results)  # segments a resumed render finished before
        return hls

    def _on_done(self, rec: RenderRecord, sched: Scheduler, journal: _Journal, hls: PlaylistPublisher):
        def on_done(task: Task, res: TaskResult) -> None:
            rec.results[task.id] = dict(res.outputs)
            if task.stage == "hls" and task.segment is not None:
                hls.segment_done(task.segment)
            done = sched.progress.done
            pair = rec.progress.get(task.stage)
            if pair is not None:
                pair[0] = done.get(task.stage, 0)
            rec.eta_s = sched.progress.eta_s(self.limits)
            journal.task_done(task.id, rec.results[task.id])
            cond = self._changed.get(rec.render_id)
            if cond is not None and cond._waiters:  # noqa: SLF001 - wake watchers only if any wait
                asyncio.get_running_loop().create_task(self._notify(rec.render_id))

        return on_done

    async def resume_all(self) -> list[str]:
        """Queue every render a previous orchestrator left QUEUED or RUNNING (oldest first), reading the
        state index only: finished renders are not touched."""
        recs = await store_io(self._unfinished)
        for rec in recs:
            rec.state = QUEUED
            self._enqueue(rec)
        self._pump()
        return [r.render_id for r in recs]

    def _unfinished(self) -> list[RenderRecord]:
        self.renders.ensure_index()  # a store from before the index: indexed once
        self.renders.replay_journals()  # records answered but not yet written on their own
        out: dict[str, RenderRecord] = {}
        for state in (QUEUED, RUNNING):
            for rid in self.renders.ids(state):
                if rid in out:
                    continue
                try:
                    rec = self.renders.load(rid)
                except NotFound:
                    self.renders.drop_stale_index(rid, state)
                    continue
                except CorruptRecord as exc:  # the store is untrusted: the others still resume
                    log.warning("not resumed: %s", exc.message)
                    continue
                if rec.state in TERMINAL:
                    # an orchestrator died between writing the record and moving its index entry
                    self.renders.repair_index(rec, state)
                    continue
                rec.saved_state = state  # unfinished, whichever entry lists it (the same crash): its
                out[rid] = rec  # next write moves that entry
        return [out[rid] for rid in sorted(out)]  # ids sort by creation time

    async def wait(self, render_id: str) -> RenderRecord:
        """The render's record once it has ended: the one this orchestrator ran and stored (no read),
        else the store's."""
        live = None
        while render_id in self._live:
            live = self._live[render_id]
            entry = self._running.get(render_id)
            if entry is not None:
                await asyncio.gather(entry[0], return_exceptions=True)
            else:
                await asyncio.sleep(0.05)  # still queued
        if live is not None and live.state in TERMINAL and live.saved_state == live.state:
            return live
        return await self.fetch(render_id)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Give webhook deliveries in flight up to `timeout_s` to finish (renders are left as they are)."""
        await self.webhooks.aclose(timeout_s)

    # -- queries and control ----------------------------------------------------------------------
    def get(self, render_id: str) -> RenderRecord:
        """The live record of a render this orchestrator runs or queues, else the stored one (blocking
        read: from the event loop use `fetch`)."""
        rec = self._live.get(render_id)
        if rec is not None:
            rec.queue_position = self.queue_position(render_id)
            return rec
        return self.renders.load(render_id)

    async def fetch(self, render_id: str) -> RenderRecord:
        rec = self._live.get(render_id)
        if rec is not None:
            return self.get(render_id)
        return await store_io(self.renders.load, render_id)

    def list(self, state: str = "") -> list[RenderRecord]:
        return self.renders.list(state)

    async def page(
        self, state: str = "", after: str = "", limit: int = 100
    ) -> tuple[list[RenderRecord], str]:
        await self._commit.drain()  # renders created here are listed as soon as they are answered
        recs, nxt = await store_io(self.renders.page, state, after, limit)
        return [self._live.get(r.render_id, r) for r in recs], nxt

    async def cancel(self, render_id: str) -> RenderRecord:
        if render_id in self._queue:
            await self._commit.stored(self._queue[render_id])  # its first write comes first
        queued = self._queue.pop(render_id, None)
        if queued is not None:
            queued.state, queued.error = CANCELLED, "cancelled"
            self._user_cancelled.add(render_id)
            await self._finish(queued, None)
            return queued
        entry = self._running.get(render_id)
        if entry is not None:
            self._user_cancelled.add(render_id)
            task, sched = entry
            if sched is not None:
                sched.cancel()
            else:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return await self.fetch(render_id)
        rec = await self.fetch(render_id)
        if rec.state not in TERMINAL:  # left by an orchestrator that is gone: end it here
            rec.state, rec.error = CANCELLED, "cancelled"
            await store_io(self.renders.save, rec)
            self.webhooks.schedule(rec)
        return rec

    def _ended_elsewhere(self, rec: RenderRecord) -> None:
        """A render created here was ended through another replica (cancelled) while its record was
        only in the creation journal, so before it started: it never starts; the store has its end
        (GetRender and WatchRender read it from now on)."""
        if self._queue.pop(rec.render_id, None) is None:
            return
        self._unlive(rec.render_id)
        self._fresh.discard(rec.render_id)
        asyncio.get_running_loop().create_task(self._notify(rec.render_id))

    def _cond(self, render_id: str) -> asyncio.Condition:
        return self._changed.setdefault(render_id, asyncio.Condition())

    async def _notify(self, render_id: str) -> None:
        cond = self._changed.get(render_id)
        if cond is None:
            return
        async with cond:
            cond.notify_all()

    async def watch(self, render_id: str, timeout_s: float = 5.0) -> AsyncIterator[RenderRecord]:
        """Yield the record now and after every change, until it reaches a terminal state (a render
        another replica runs is polled from the store every `timeout_s`)."""
        rec = await self.fetch(render_id)
        state = rec.state  # as yielded: a live record may change while the consumer holds it
        yield rec
        cond = self._cond(render_id)
        try:
            while state not in TERMINAL:
                async with cond:
                    try:
                        await asyncio.wait_for(cond.wait(), timeout_s)
                    except TimeoutError:
                        pass
                try:
                    rec = await self.fetch(render_id)
                except NotFound:
                    return
                state = rec.state
                yield rec
        finally:
            if not cond._waiters:  # noqa: SLF001
                self._changed.pop(render_id, None)
