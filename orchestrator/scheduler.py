"""Run a Plan: each task starts as soon as its dependencies are done (docs/architecture.md §3).

Transport-free: an `Executor` turns one task (+ its dependencies' results) into a `TaskResult`; the
gRPC executor calls the stage services, tests use in-process ones. Per stage, at most
`limits.concurrency[stage]` tasks are in flight (its replicas × max ongoing requests). A task that fails
with a retryable error (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) is retried with exponential
backoff; any other error fails the render at once, naming the task, and cancels what is in flight.
`done` seeds results from a previous run, so a resumed render recomputes nothing that finished.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lihq.errors import Cancelled, DeadlineExceeded, LihqError
from lihq.grpc.errors import AppDeploying, as_lihq_error
from orchestrator.plan import Plan, Task

log = logging.getLogger("lihq.orchestrator")


@dataclass(frozen=True)
class TaskResult:
    """What a task produced: small, JSON-serialisable values (object keys, durations, counts)."""

    outputs: Mapping[str, Any]
    wall_s: float = 0.0
    cache_hit: bool = False
    attempts: int = 1


class Executor(Protocol):
    async def run(self, task: Task, deps: Mapping[str, TaskResult]) -> TaskResult: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_s: float = 0.5
    max_s: float = 10.0
    jitter: float = 0.2
    # a stage app that is still deploying (AppDeploying) is retried for up to this long, past `attempts`
    deploy_wait_s: float = 600.0

    def delay(self, attempt: int) -> float:
        d = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return d * (1 + self.jitter * (2 * random.random() - 1))

    def again(self, err: LihqError, attempt: int, since: float) -> bool:
        """Whether a failed call is tried again: retryable codes, `attempts` times; a stage app that is
        deploying, until `deploy_wait_s` has passed since the first attempt."""
        if not err.retryable:
            return False
        if attempt < self.attempts:
            return True
        return isinstance(err, AppDeploying) and time.monotonic() - since < self.deploy_wait_s


@dataclass(frozen=True)
class Limits:
    concurrency: Mapping[str, int] = field(default_factory=dict)
    default_concurrency: int = 2
    deadline_s: Mapping[str, float] = field(default_factory=dict)
    default_deadline_s: float = 900.0

    def slots(self, stage: str) -> int:
        return max(1, int(self.concurrency.get(stage, self.default_concurrency)))

    def deadline(self, stage: str) -> float:
        return float(self.deadline_s.get(stage, self.default_deadline_s))


async def call_with_retry(
    executor: Executor, task: Task, deps: Mapping[str, TaskResult], limits: Limits, retry: RetryPolicy
) -> TaskResult:
    """One task outside a Scheduler (creation-time checks): the same deadline and retry rules."""
    attempt, since = 0, time.monotonic()
    while True:
        attempt += 1
        try:
            return await asyncio.wait_for(executor.run(task, deps), limits.deadline(task.stage))
        except TimeoutError as exc:
            err: LihqError = DeadlineExceeded(
                f"{task.id}: no answer within {limits.deadline(task.stage):.0f} s"
            )
            cause: BaseException = exc
        except Exception as exc:  # noqa: BLE001 - classified below
            err, cause = as_lihq_error(exc), exc
        if not retry.again(err, attempt, since):
            raise err from cause
        await asyncio.sleep(retry.delay(attempt))


class TaskFailed(LihqError):
    """A task failed for good. `code` is the task's own error code (INVALID_ARGUMENT stays that)."""

    def __init__(self, task: Task, err: LihqError, attempts: int) -> None:
        super().__init__(f"{task.id} ({task.stage}) failed after {attempts} attempt(s): {err.message}")
        self.task, self.error, self.attempts = task, err, attempts
        self.code = err.code


EventFn = Callable[[Task, TaskResult], Awaitable[None] | None]


@dataclass
class Progress:
    total: dict[str, int]
    done: dict[str, int]
    wall: dict[str, float]

    def eta_s(self, limits: Limits) -> float:
        """Remaining work per stage at its mean task time, divided by its slots (stages overlap: max)."""
        etas = []
        for stage, total in self.total.items():
            left = total - self.done.get(stage, 0)
            if left and self.done.get(stage):
                mean = self.wall[stage] / self.done[stage]
                etas.append(left * mean / limits.slots(stage))
        return max(etas, default=0.0)


class Scheduler:
    def __init__(
        self,
        plan: Plan,
        executor: Executor,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        done: Mapping[str, TaskResult] | None = None,
        on_done: EventFn | None = None,
    ) -> None:
        self.plan, self.executor = plan, executor
        self.limits, self.retry = limits or Limits(), retry or RetryPolicy()
        self.results: dict[str, TaskResult] = {k: v for k, v in (done or {}).items() if k in plan.tasks}
        self.on_done = on_done
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._cancel = asyncio.Event()
        self._finished: asyncio.Queue | None = None
        self.calls: dict[str, int] = {}  # executor invocations per task id (resume tests count these)
        stages = [t.stage for t in plan.tasks.values()]
        self.progress = Progress({s: stages.count(s) for s in set(stages)}, {}, {})
        for tid in self.results:
            self._count(plan.tasks[tid], self.results[tid])

    def cancel(self) -> None:
        self._cancel.set()
        if self._finished is not None:
            self._finished.put_nowait(None)  # wake run()

    def _count(self, task: Task, res: TaskResult) -> None:
        self.progress.done[task.stage] = self.progress.done.get(task.stage, 0) + 1
        self.progress.wall[task.stage] = self.progress.wall.get(task.stage, 0.0) + res.wall_s

    def _sem(self, stage: str) -> asyncio.Semaphore:
        if stage not in self._sems:
            self._sems[stage] = asyncio.Semaphore(self.limits.slots(stage))
        return self._sems[stage]

    async def _attempt(self, task: Task) -> TaskResult:
        deps = {d: self.results[d] for d in task.deps}
        async with self._sem(task.stage):
            self.calls[task.id] = self.calls.get(task.id, 0) + 1
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(self.limits.deadline(task.stage)):  # no extra task per call
                    res = await self.executor.run(task, deps)
            except TimeoutError as exc:
                raise DeadlineExceeded(
                    f"{task.id}: no answer within {self.limits.deadline(task.stage):.0f} s"
                ) from exc
        if not res.wall_s:
            res = TaskResult(res.outputs, time.perf_counter() - t0, res.cache_hit, res.attempts)
        return res

    async def _run_task(self, task: Task) -> TaskResult:
        attempt, since = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                res = await self._attempt(task)
                return TaskResult(res.outputs, res.wall_s, res.cache_hit, attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classify: only retryable codes are tried again
                err = as_lihq_error(exc)
                if not self.retry.again(err, attempt, since) or self._cancel.is_set():
                    raise TaskFailed(task, err, attempt) from exc
                log.info("retrying %s after %s (attempt %d): %s", task.id, err.code, attempt, err.message)
                await asyncio.sleep(self.retry.delay(attempt))

    async def run(self) -> dict[str, TaskResult]:
        """O(1) bookkeeping per task: each task counts its unfinished dependencies, a finished task
        decrements its dependents' counts, and finished tasks arrive on one queue (no scan of what is
        pending or in flight per completion)."""
        tasks = self.plan.tasks
        waiting: dict[str, int] = {}
        dependents: dict[str, list[str]] = {}
        for tid, t in tasks.items():
            if tid in self.results:
                continue
            open_deps = [d for d in t.deps if d not in self.results]
            waiting[tid] = len(open_deps)
            for d in open_deps:
                dependents.setdefault(d, []).append(tid)
        finished: asyncio.Queue[tuple[Task, asyncio.Task] | None] = asyncio.Queue()
        self._finished = finished
        running: set[asyncio.Task] = set()

        def launch(task: Task) -> None:
            fut = asyncio.create_task(self._run_task(task))
            running.add(fut)
            fut.add_done_callback(lambda f: finished.put_nowait((task, f)))

        try:
            if self._cancel.is_set():
                raise Cancelled("render cancelled")
            for tid, n in waiting.items():
                if n == 0:
                    launch(tasks[tid])
            left = len(waiting)
            while left:
                if not running:
                    raise LihqError(
                        f"unsatisfiable dependencies: {sorted(t for t, n in waiting.items() if n)}"
                    )
                item = await finished.get()
                if item is None or self._cancel.is_set():
                    raise Cancelled("render cancelled")
                task, fut = item
                running.discard(fut)
                res = fut.result()  # raises TaskFailed
                left -= 1
                self.results[task.id] = res
                self._count(task, res)
                if self.on_done is not None:
                    maybe = self.on_done(task, res)
                    if asyncio.iscoroutine(maybe):
                        await maybe
                for dep in dependents.pop(task.id, ()):
                    waiting[dep] -= 1
                    if waiting[dep] == 0:
                        launch(tasks[dep])
            return self.results
        finally:
            self._finished = None
            for fut in running:
                fut.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
