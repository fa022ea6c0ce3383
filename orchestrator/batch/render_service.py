"""The k8s batch job's renderer: one render per manifest line on the orchestrator's RenderService.

`render_service_renderer` is the `--renderer` factory (k8s/batch/batch.env:
LIHQ_BATCH_RENDERER=orchestrator.batch.render_service:render_service_renderer); orchestrator/batch/__init__.py runs the
manifest, records results and resumes, and loads this module by name, so it imports nothing from here.

A line
    {"key": "clip-0001", "render": {"face": {"key": "inputs/<sha256>.png"}, "audio": {"key": ...}}}
    key          unique in the manifest; names the job in logs and results
    render       a lihq.v1.RenderSpec in protobuf JSON (snake_case or camelCase; unknown fields refused)
    webhook_url  optional, passed to CreateRender
The render is created with an idempotency key derived from (manifest key, job key, line digest), so a
re-run or a retried RayJob finds the render it already created instead of making another; it is
followed with WatchRender (GetRender when the stream drops) until it ends. Only a render that ended
FAILED or CANCELLED in an earlier run is rendered again, under the next key of that line. A render that
ended FAILED fails its job with the failing stage's own code (Render.error_code), e.g.
"INVALID_ARGUMENT: render <id> failed at stage wav2lip: ...". Results lines carry its "render_id".
The orchestrator is the `orchestrator` entry of `lihq.stages` (LIHQ_STAGE_ORCHESTRATOR_ADDRESS /
_APPLICATION, default: LIHQ_STAGES_ADDRESS and application "orchestrator").
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import json_format

from lihq.errors import BY_CODE, Cancelled, FailedPrecondition, Internal, InvalidInput, LihqError
from lihq.grpc.client import StageEndpoint
from lihq.storage.base import ObjectStore
from lihq.v1 import render_pb2
from orchestrator.batch import Job, Rendered, RenderOne

log = logging.getLogger("lihq.batch")

RENDER_LINE_FIELDS = ("key", "render", "webhook_url")
# codes after which watching a render again cannot help (the render is gone, or the id is refused)
_FINAL_WATCH_CODES = frozenset({"NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "FAILED_PRECONDITION"})
_ENDED = (
    render_pb2.RENDER_STATE_SUCCEEDED,
    render_pb2.RENDER_STATE_FAILED,
    render_pb2.RENDER_STATE_CANCELLED,
)
_ENDED_BADLY = (render_pb2.RENDER_STATE_FAILED, render_pb2.RENDER_STATE_CANCELLED)


def render_request(job: Job) -> render_pb2.CreateRenderRequest:
    """The CreateRender request of a line `{"key", "render": RenderSpec JSON, "webhook_url"?}` (no
    idempotency key yet). A bad line is InvalidInput naming the job: it fails that job, not the batch."""
    extra = sorted(set(job.raw) - set(RENDER_LINE_FIELDS))
    if extra:
        raise InvalidInput(
            f"job {job.key!r}: unknown field(s) {extra}; a render line has {list(RENDER_LINE_FIELDS)}"
        )
    spec = job.raw.get("render")
    if not isinstance(spec, dict):
        raise InvalidInput(
            f"job {job.key!r}: `render` must be a lihq.v1.RenderSpec object in protobuf JSON, e.g. "
            '{"face": {"key": "inputs/<sha256>.png"}, "audio": {"key": "inputs/<sha256>.wav"}}'
        )
    hook = job.raw.get("webhook_url", "")
    if not isinstance(hook, str):
        raise InvalidInput(f"job {job.key!r}: `webhook_url` must be a string")
    try:
        msg = json_format.ParseDict(spec, render_pb2.RenderSpec())
    except json_format.ParseError as exc:
        raise InvalidInput(f"job {job.key!r}: `render` is not a lihq.v1.RenderSpec: {exc}") from exc
    return render_pb2.CreateRenderRequest(renders=[msg], webhook_url=hook)


def idempotency_key(job: Job, generation: int = 0) -> str:
    """CreateRender's idempotency key for a job: the same manifest, key and line always name the same
    render (so a re-run, a retried RayJob or a retried call never makes a second one). Generation n > 0
    is the n-th render of that line after earlier ones ended FAILED or CANCELLED."""
    digest = hashlib.sha256(json.dumps([job.manifest, job.key, job.digest]).encode()).hexdigest()
    return f"batch:{digest}:{generation}"


def _with_render(err: LihqError, render_id: str) -> LihqError:
    """Tag a job's failure with its render, for the results line (`run_job` reads `render_id`)."""
    err.render_id = render_id  # type: ignore[attr-defined]
    return err


class RenderServiceRenderer:
    """Runs each job as one render on RenderService (protos/lihq/v1/render.proto) and waits for it.

    create: CreateRender with `idempotency_key(job, n)`. A render that already ended FAILED/CANCELLED
        under key n is from an earlier run (`job.failed_runs` of them at most): the job moves to key n+1.
    follow: WatchRender until the render ends. The stream is reopened every `watch_window_s`; when it
        drops, GetRender is polled every `poll_s` until the orchestrator answers again (it resumes its
        renders after a restart), for at most `reconnect_s` without an answer — then Unavailable, which
        `run_job` retries (CreateRender with the same key finds the same render).
    SUCCEEDED -> [the output key]; FAILED -> the typed error of the render's `error_code` (FailedPrecondition
    when it has none), naming the stage and never retried in this run; CANCELLED -> Cancelled.
    Call errors come back typed (`error_from_rpc`): INVALID_ARGUMENT fails the job, UNAVAILABLE is retried.
    """

    def __init__(
        self,
        endpoint: StageEndpoint,
        create_timeout_s: float = 600.0,
        call_timeout_s: float = 30.0,
        watch_window_s: float = 300.0,
        poll_s: float = 2.0,
        reconnect_s: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from lihq.client import Client  # the API users' client (token: LIHQ_API_TOKEN / $LIHQ_HOME/api-token)

        self.endpoint = endpoint
        self.client = Client(endpoint.address, application=endpoint.application)
        self.create_timeout_s, self.call_timeout_s = create_timeout_s, call_timeout_s
        self.watch_window_s, self.poll_s, self.reconnect_s = watch_window_s, poll_s, reconnect_s
        self.sleep = sleep

    def __call__(self, job: Job) -> Rendered:
        return self.follow(self.create(job, render_request(job)))

    def create(self, job: Job, request: render_pb2.CreateRenderRequest) -> render_pb2.Render:
        generation = 0
        while True:
            request.idempotency_key = idempotency_key(job, generation)
            renders = self.client.create(
                list(request.renders), request.idempotency_key, request.webhook_url, self.create_timeout_s
            )
            if len(renders) != 1:
                raise Internal(f"job {job.key!r}: CreateRender answered {len(renders)} renders for one spec")
            render = renders[0]
            if render.state not in _ENDED_BADLY or generation >= job.failed_runs:
                log.info(
                    "job %s: render %s (%s)",
                    job.key,
                    render.render_id,
                    render_pb2.RenderState.Name(render.state),
                    extra={"render_id": render.render_id},
                )
                return render
            log.info(
                "job %s: render %s of an earlier run ended %s; rendering again",
                job.key,
                render.render_id,
                render_pb2.RenderState.Name(render.state),
                extra={"render_id": render.render_id},
            )
            generation += 1

    def follow(self, render: render_pb2.Render) -> Rendered:
        """Wait for `render` to end; its outcome (or a typed error tagged with its id)."""
        rid = render.render_id
        heard = time.monotonic()
        while render.state not in _ENDED:
            try:
                for event in self._watch(rid):
                    render, heard = event.render, time.monotonic()
                    if render.state in _ENDED:
                        break
            except LihqError as exc:
                if exc.code in _FINAL_WATCH_CODES:
                    raise _with_render(exc, rid) from exc
                log.info("render %s: watch dropped (%s), polling", rid, exc.code, extra={"render_id": rid})
            if render.state in _ENDED:
                break
            try:  # the stream ended early or dropped: ask, then watch again
                render = self.client.get(rid, self.call_timeout_s)
                heard = time.monotonic()
            except LihqError as exc:
                if not exc.retryable or time.monotonic() - heard > self.reconnect_s:
                    raise _with_render(exc, rid) from exc
            if render.state not in _ENDED:
                self.sleep(self.poll_s)
        return self._outcome(render)

    def _watch(self, render_id: str) -> Iterator[render_pb2.RenderEvent]:
        """WatchRender for at most `watch_window_s` (a typed error if the stream breaks)."""
        stream = self.client.watch(render_id, timeout=self.watch_window_s)
        try:
            yield from stream
        finally:
            stream.cancel()

    @staticmethod
    def _outcome(render: render_pb2.Render) -> Rendered:
        rid = render.render_id
        if render.state == render_pb2.RENDER_STATE_SUCCEEDED:
            if not render.output.key:
                raise _with_render(Internal(f"render {rid} succeeded without an output"), rid)
            return Rendered([render.output.key], rid)
        if render.state == render_pb2.RENDER_STATE_CANCELLED:
            raise _with_render(Cancelled(f"render {rid} was cancelled"), rid)
        where = f" at stage {render.error_stage}" if render.error_stage else ""
        error_type = BY_CODE.get(render.error_code, FailedPrecondition)
        err = error_type(f"render {rid} failed{where}: {render.error or 'no error recorded'}")
        err.retryable = False  # the render has ended: a retry in this run would find the same render
        raise _with_render(err, rid)

    def close(self) -> None:
        self.client.close()


def render_service_renderer(endpoints: Any, store: ObjectStore) -> RenderOne:
    """`--renderer` factory of the k8s batch job: one render per job on RenderService, found as the
    `orchestrator` entry of `lihq.stages` (`endpoints`: a StageEndpoints)."""
    return RenderServiceRenderer(endpoints.get("orchestrator"))
