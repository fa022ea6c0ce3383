"""Batch rendering: a JSONL manifest in the bucket -> bounded-concurrency runs -> a results manifest.

This is what the k8s batch RayJob runs (`python -m orchestrator.batch`). It needs no Ray compute of its
own: each job is one call (or a short chain of calls) over gRPC, made by a *renderer* (`--renderer
module:factory`, env LIHQ_BATCH_RENDERER), loaded by name. Two ship:

`orchestrator.batch.render_service:render_service_renderer` (the k8s batch job's): one render per line on the
    orchestrator's RenderService, `{"key": "clip-0001", "render": <RenderSpec JSON>, "webhook_url"?}`;
    see orchestrator/batch/render_service.py.

`orchestrator.batch:stage_call_renderer` (the CLI default): one unary stage call per line
    {"key": "clip-0001", "op": "lihq.v1.MediaService/Encode", "request": {...}}
    op       "<gRPC service>/<Method>" of any unary stage method; the stage serving that service is
             found through `lihq.stages` (so a swapped stage is used as configured)
    request  the request message in protobuf JSON (snake_case or camelCase field names)

Results manifest (one line per manifest job, in manifest order)
    {"key", "status": "succeeded" | "failed", "error", "outputs": [object keys], "attempts", "wall_s"}
    + "render_id" when the job made a render (render_service_renderer), failed or not.

Resumable: each finished job writes `<results>.state/<sha256(key)>.json` at once, so a re-run (a
RayJob retry, or the operator after fixing inputs) skips jobs that already succeeded with the same
line and re-runs failed and missing ones. Retryable errors (UNAVAILABLE, RESOURCE_EXHAUSTED,
DEADLINE_EXCEEDED) are retried with backoff inside a run; others fail the job, not the batch.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lihq.errors import InvalidInput, LihqError
from lihq.storage.base import ObjectStore, validate_key

log = logging.getLogger("lihq.batch")

SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One manifest line. `digest` identifies its content: a changed line is not 'already done'.

    `manifest` is the manifest's object key; `failed_runs` counts the earlier runs that recorded this
    very line (same digest) as failed — a renderer may use it to retry work those runs left failed.
    """

    key: str
    line: int
    raw: dict[str, Any]
    digest: str
    manifest: str = ""
    failed_runs: int = 0

    @property
    def op(self) -> str:
        return str(self.raw.get("op", ""))

    @property
    def request(self) -> dict[str, Any]:
        req = self.raw.get("request", {})
        if not isinstance(req, dict):
            raise InvalidInput(f"job {self.key!r}: `request` must be a JSON object")
        return req


@dataclass(frozen=True)
class JobResult:
    key: str
    status: str
    error: str = ""
    outputs: tuple[str, ...] = ()
    attempts: int = 0
    wall_s: float = 0.0
    digest: str = ""
    render_id: str = ""  # the render the job made (render_service_renderer); in results only when set
    failed_runs: int = 0  # runs that recorded this line as failed, this one included (state only)

    def line(self) -> dict[str, Any]:
        d = asdict(self)
        d["outputs"] = list(self.outputs)
        d.pop("digest")
        d.pop("failed_runs")
        if not self.render_id:
            d.pop("render_id")
        return d


@dataclass(frozen=True)
class Rendered:
    """What a renderer may return instead of a bare key list: the outputs and the render that made them."""

    outputs: list[str]
    render_id: str = ""


# A renderer: run one job to completion, return the object keys it produced (or a `Rendered`); raise
# LihqError on failure — with a `render_id` attribute when the failure belongs to a render it made.
RenderOne = Callable[[Job], list[str] | Rendered]


@dataclass(frozen=True)
class BatchConfig:
    manifest_key: str
    results_key: str
    concurrency: int = 4
    max_attempts: int = 3
    backoff_s: float = 1.0
    flush_every: int = 100

    def __post_init__(self) -> None:
        validate_key(self.manifest_key)
        validate_key(self.results_key)
        if self.results_key == self.manifest_key:
            raise InvalidInput("the results manifest must not overwrite the input manifest")
        if self.concurrency < 1 or self.max_attempts < 1:
            raise InvalidInput("concurrency and max_attempts must be >= 1")

    @property
    def state_prefix(self) -> str:
        return f"{self.results_key}.state/"


@dataclass(frozen=True)
class BatchSummary:
    total: int
    succeeded: int
    failed: int
    skipped: int  # succeeded in an earlier run, not run again
    results: tuple[JobResult, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def parse_manifest(text: str, manifest_key: str = "") -> list[Job]:
    """Parse JSONL into jobs. Malformed lines or duplicate keys refuse the whole manifest (with line
    numbers): nothing runs until the manifest is unambiguous."""
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            raw = json.loads(s)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        key = raw.get("key") if isinstance(raw, dict) else None
        if not isinstance(key, str) or not key:
            problems.append(f"line {n}: expected an object with a non-empty string `key`")
        elif key in seen:
            problems.append(f"line {n}: key {key!r} repeats line {seen[key]}")
        else:
            seen[key] = n
            digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
            jobs.append(Job(key, n, raw, digest, manifest_key))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; … {len(problems) - 10} more" if len(problems) > 10 else "")
        raise InvalidInput(f"batch manifest is invalid: {shown}")
    return jobs


def state_key(cfg: BatchConfig, key: str) -> str:
    return cfg.state_prefix + hashlib.sha256(key.encode()).hexdigest()[:40] + ".json"


def load_states(store: ObjectStore, cfg: BatchConfig, workers: int = 8) -> dict[str, JobResult]:
    """Results recorded by earlier runs, by job key."""
    infos = list(store.list(cfg.state_prefix))

    def read(key: str) -> JobResult | None:
        try:
            d = json.loads(store.get_bytes(key))
            d["outputs"] = tuple(d.get("outputs", ()))
            return JobResult(**d)
        except (ValueError, TypeError) as exc:  # a torn or foreign object: ignore, the job re-runs
            log.warning("ignoring unreadable batch state %s: %s", key, exc)
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = [r for r in pool.map(read, [i.key for i in infos]) if r is not None]
    return {r.key: r for r in found}


def run_job(job: Job, render_one: RenderOne, cfg: BatchConfig, sleep: Callable[[float], None]) -> JobResult:
    """Run one job with bounded retries of retryable errors; never raises for a job's own failure."""
    t0 = time.perf_counter()
    attempt = 0
    render_id = ""
    while True:
        attempt += 1
        try:
            done = render_one(job)
            outputs, render_id = (done.outputs, done.render_id) if isinstance(done, Rendered) else (done, "")
            return JobResult(
                job.key,
                SUCCEEDED,
                outputs=tuple(outputs),
                attempts=attempt,
                wall_s=time.perf_counter() - t0,
                digest=job.digest,
                render_id=render_id,
                failed_runs=job.failed_runs,
            )
        except LihqError as exc:
            render_id = getattr(exc, "render_id", "") or render_id
            if exc.retryable and attempt < cfg.max_attempts:
                log.info(
                    "job %s: %s (%s), retrying", job.key, exc.code, exc.message, extra={"render_id": job.key}
                )
                sleep(cfg.backoff_s * 2 ** (attempt - 1))
                continue
            error = f"{exc.code}: {exc.message}"
        except Exception as exc:  # a renderer bug must not take the other jobs down
            log.exception("job %s crashed", job.key, extra={"render_id": job.key})
            error = f"INTERNAL: {type(exc).__name__}: {exc}"
        return JobResult(
            job.key,
            FAILED,
            error,
            attempts=attempt,
            wall_s=time.perf_counter() - t0,
            digest=job.digest,
            render_id=render_id,
            failed_runs=job.failed_runs + 1,
        )


def _write_results(store: ObjectStore, cfg: BatchConfig, jobs: list[Job], done: dict[str, JobResult]) -> None:
    lines = [json.dumps(done[j.key].line(), sort_keys=True) for j in jobs if j.key in done]
    store.put_bytes(cfg.results_key, ("\n".join(lines) + "\n").encode(), "application/x-ndjson")


def run_batch(
    store: ObjectStore,
    cfg: BatchConfig,
    render_one: RenderOne,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchSummary:
    """Run every job of the manifest not already succeeded; write state per job and the results."""
    jobs = parse_manifest(store.get_bytes(cfg.manifest_key).decode("utf-8"), cfg.manifest_key)
    previous = load_states(store, cfg)
    same = {j.key: previous[j.key] for j in jobs if j.key in previous and previous[j.key].digest == j.digest}
    done = {k: r for k, r in same.items() if r.status == SUCCEEDED}
    skipped = len(done)
    todo = [replace(j, failed_runs=same[j.key].failed_runs) if j.key in same else j for j in jobs]
    todo = [j for j in todo if j.key not in done]
    log.info(
        "batch %s: %d jobs, %d already done, running %d", cfg.manifest_key, len(jobs), skipped, len(todo)
    )

    def one(job: Job) -> JobResult:
        result = run_job(job, render_one, cfg, sleep)
        body = json.dumps(asdict(result) | {"outputs": list(result.outputs)}, sort_keys=True).encode()
        store.put_bytes(state_key(cfg, job.key), body, "application/json")
        return result

    finished = 0
    with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="batch") as pool:
        for result in _bounded(pool, one, todo, cfg.concurrency):
            done[result.key] = result
            finished += 1
            log.info(
                "job %s %s (%d/%d)",
                result.key,
                result.status,
                finished,
                len(todo),
                extra={"render_id": result.key},
            )
            if finished % cfg.flush_every == 0:
                _write_results(store, cfg, jobs, done)
    _write_results(store, cfg, jobs, done)
    ok = sum(1 for r in done.values() if r.status == SUCCEEDED)
    results = tuple(done[j.key] for j in jobs)
    return BatchSummary(len(jobs), ok, len(jobs) - ok, skipped, results)


def _bounded(pool: ThreadPoolExecutor, fn: Callable[[Job], JobResult], jobs: Iterable[Job], limit: int):
    """Yield results as they finish with at most `limit` jobs submitted at a time."""
    pending: set[Future[JobResult]] = set()
    it = iter(jobs)
    for job in it:
        pending.add(pool.submit(fn, job))
        if len(pending) >= limit:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                yield f.result()
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in finished:
            yield f.result()


def load_renderer(spec: str) -> Callable[..., RenderOne]:
    """`module:factory` -> the factory (called with (endpoints, store))."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise InvalidInput(f"--renderer {spec!r}: expected module:factory")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"--renderer {spec!r}: {exc}") from exc


# -- the default renderer: one unary call to a stage, addressed through lihq.stages -----------------
class StageCallRenderer:
    """Runs jobs `{"op": "lihq.v1.<Service>/<Method>", "request": {...}}` through `lihq.stages.StageCaller`
    (the stage serving <Service>, at the address and Serve application `StageEndpoints` gives it)."""

    def __init__(self, endpoints: Any, timeout_s: float = 600.0) -> None:
        from lihq.stages import StageCaller

        self.caller = StageCaller(endpoints, timeout_s)

    def __call__(self, job: Job) -> list[str]:
        from lihq.stages import object_keys

        return object_keys(self.caller.call(job.op, job.request, render_id=f"batch:{job.key}"))

    def close(self) -> None:
        self.caller.close()


def stage_call_renderer(endpoints: Any, store: ObjectStore) -> RenderOne:
    """Default `--renderer` factory: one unary stage call per job (works with the media stage alone)."""
    return StageCallRenderer(endpoints)


# -- the command the RayJob runs --------------------------------------------------------------------
def run_configured(
    manifest: str, results: str, concurrency: int, max_attempts: int, renderer: str, stages_yaml: str | None
) -> BatchSummary:
    """A batch with the store and stage endpoints of this process's configuration (env or YAML)."""
    from pathlib import Path

    from lihq import log as lihq_log
    from lihq.config import StoreConfig
    from lihq.stages import StageEndpoints
    from lihq.storage import open_store

    lihq_log.configure()
    cfg = BatchConfig(manifest, results, concurrency, max_attempts)
    endpoints = StageEndpoints.from_yaml(Path(stages_yaml)) if stages_yaml else StageEndpoints.from_env()
    store = open_store(StoreConfig.from_env())
    render_one = load_renderer(renderer)(endpoints, store)
    try:
        return run_batch(store, cfg, render_one)
    finally:
        close = getattr(render_one, "close", None)
        if callable(close):
            close()


def main(argv: list[str] | None = None) -> None:
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--manifest", envvar="LIHQ_BATCH_MANIFEST", required=True, help="JSONL manifest key.")
    @click.option("--results", envvar="LIHQ_BATCH_RESULTS", required=True, help="Results manifest key.")
    @click.option("--concurrency", envvar="LIHQ_BATCH_CONCURRENCY", type=int, default=4, show_default=True)
    @click.option("--max-attempts", envvar="LIHQ_BATCH_MAX_ATTEMPTS", type=int, default=3, show_default=True)
    @click.option(
        "--renderer",
        envvar="LIHQ_BATCH_RENDERER",
        default="orchestrator.batch:stage_call_renderer",
        show_default=True,
        help="module:factory; factory(endpoints, store) -> render_one(job) -> [output keys]. "
        "orchestrator.batch.render_service:render_service_renderer renders `render` lines on RenderService.",
    )
    @click.option(
        "--stages",
        "stages_yaml",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="Stage endpoints YAML (default: LIHQ_STAGES_ADDRESS / LIHQ_STAGE_<NAME>_* env).",
    )
    def cli(
        manifest: str,
        results: str,
        concurrency: int,
        max_attempts: int,
        renderer: str,
        stages_yaml: str | None,
    ) -> None:
        """Render every job of a manifest in the bucket; write the results manifest beside it."""
        try:
            summary = run_configured(manifest, results, concurrency, max_attempts, renderer, stages_yaml)
        except LihqError as exc:
            click.echo(f"error: {exc.message}", err=True)
            raise SystemExit(2 if isinstance(exc, InvalidInput) else 1) from exc
        click.echo(
            f"batch {manifest}: {summary.total} jobs, {summary.succeeded} succeeded "
            f"({summary.skipped} from earlier runs), {summary.failed} failed -> {results}"
        )
        raise SystemExit(0 if summary.ok else 1)

    cli.main(args=argv, prog_name="python -m orchestrator.batch", standalone_mode=True)
