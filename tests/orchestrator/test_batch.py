"""The batch job: manifest parsing, bounded concurrency, results, retries and resuming.

Unit tests use a FileStore and fake renderers; the render-service tests run `render_service_renderer`
against a real RenderService (orchestrator core + fake stages) on a plain gRPC server over a FileStore;
the integration tests run the real entry point (the command the k8s RayJob runs) against the S3 server
and a MediaService on a plain gRPC server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lihq.errors import FailedPrecondition, InvalidInput, NotFound, Unavailable
from lihq.grpc.client import StageEndpoint
from lihq.stages import StageEndpoints
from lihq.storage import FileStore
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.batch import (
    FAILED,
    SUCCEEDED,
    BatchConfig,
    Job,
    StageCallRenderer,
    parse_manifest,
    run_batch,
    state_key,
)
from orchestrator.batch.render_service import (
    RenderServiceRenderer,
    idempotency_key,
    render_request,
    render_service_renderer,
)
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy, TaskResult
from orchestrator.servicer import RenderServicer
from orchestrator.state import RenderStore
from tests.k8s.plainmedia import plain_media_server
from tests.mediafiles import lavfi_video
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server

REPO = Path(__file__).resolve().parents[2]


def put_manifest(store, key: str, lines: list[dict]) -> None:
    store.put_bytes(key, ("\n".join(json.dumps(x) for x in lines) + "\n").encode())
    for line in lines:  # CreateRender checks that the inputs exist; the fake stages never read them
        render = line.get("render") if isinstance(line, dict) else None
        for ref in (render.get("face"), render.get("audio")) if isinstance(render, dict) else ():
            if isinstance(ref, dict) and ref.get("key") and not store.exists(ref["key"]):
                store.put_bytes(ref["key"], b"stand-in")


def read_results(store, key: str) -> list[dict]:
    return [json.loads(x) for x in store.get_bytes(key).decode().splitlines() if x.strip()]


@pytest.fixture
def store(tmp_path) -> FileStore:
    return FileStore(tmp_path / "store", "lihq-batch")


def cfg(**kw) -> BatchConfig:
    base = {"manifest_key": "batches/b1/manifest.jsonl", "results_key": "batches/b1/results.jsonl"}
    return BatchConfig(**(base | kw))


# -- manifest -------------------------------------------------------------------------------------
def test_manifest_skips_blanks_and_comments_and_digests_lines():
    jobs = parse_manifest('# header\n\n{"key": "a", "op": "x"}\n{"key": "b", "op": "y"}\n')
    assert [j.key for j in jobs] == ["a", "b"] and [j.line for j in jobs] == [3, 4]
    again = parse_manifest('{"op": "x", "key": "a"}')  # same content, other key order: same digest
    assert again[0].digest == jobs[0].digest
    assert parse_manifest('{"key": "a", "op": "z"}')[0].digest != jobs[0].digest


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"key": "a"}\n{"key": "a"}', "line 2: key 'a' repeats line 1"),
        ('{"key": "a"}\nnot json', "line 2: not JSON"),
        ('{"op": "x"}', "line 1: expected an object with a non-empty string `key`"),
        ("[1, 2]", "line 1: expected an object"),
    ],
)
def test_bad_manifest_is_refused_before_anything_runs(text, needle):
    with pytest.raises(InvalidInput, match="batch manifest is invalid") as ei:
        parse_manifest(text)
    assert needle in ei.value.message


def test_config_refuses_overwriting_the_manifest_and_bad_keys():
    with pytest.raises(InvalidInput, match="must not overwrite"):
        BatchConfig("b/m.jsonl", "b/m.jsonl")
    with pytest.raises(InvalidInput):
        BatchConfig("../m.jsonl", "b/r.jsonl")
    with pytest.raises(InvalidInput, match=">= 1"):
        BatchConfig("b/m.jsonl", "b/r.jsonl", concurrency=0)


# -- running --------------------------------------------------------------------------------------
class Recorder:
    """A fake renderer: sleeps a little, records calls and the peak number of jobs in flight."""

    def __init__(self, fail: dict[str, Exception] | None = None, delay: float = 0.02) -> None:
        self.fail = dict(fail or {})
        self.delay = delay
        self.calls: list[str] = []
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, job: Job) -> list[str]:
        with self.lock:
            self.calls.append(job.key)
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            exc = self.fail.get(job.key)
            if exc is not None:
                raise exc
            return [f"out/{job.key}.mp4"]
        finally:
            with self.lock:
                self.active -= 1


def test_bounded_concurrency_and_results_in_manifest_order(store):
    put_manifest(store, "batches/b1/manifest.jsonl", [{"key": f"j{i:02d}"} for i in range(12)])
    rec = Recorder(fail={"j03": InvalidInput("face image has no face")})
    summary = run_batch(store, cfg(concurrency=3), rec)
    assert rec.peak <= 3 and rec.peak >= 2
    assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (12, 11, 1, 0)
    rows = read_results(store, "batches/b1/results.jsonl")
    assert [r["key"] for r in rows] == [f"j{i:02d}" for i in range(12)]
    bad = rows[3]
    assert bad["status"] == FAILED and bad["error"] == "INVALID_ARGUMENT: face image has no face"
    assert bad["outputs"] == [] and bad["attempts"] == 1
    assert rows[0]["status"] == SUCCEEDED and rows[0]["outputs"] == ["out/j00.mp4"] and rows[0]["error"] == ""


def test_retryable_errors_are_retried_with_backoff_then_recorded(store):
    put_manifest(store, "batches/b1/manifest.jsonl", [{"key": "flaky"}, {"key": "down"}])
    attempts: dict[str, int] = {}

    def render(job: Job) -> list[str]:
        attempts[job.key] = attempts.get(job.key, 0) + 1
        if job.key == "down" or attempts[job.key] < 3:
            raise Unavailable("stage unreachable")
        return ["ok"]

    sleeps: list[float] = []
    summary = run_batch(store, cfg(max_attempts=3, backoff_s=0.5), render, sleep=sleeps.append)
    rows = {r["key"]: r for r in read_results(store, "batches/b1/results.jsonl")}
    assert rows["flaky"]["status"] == SUCCEEDED and rows["flaky"]["attempts"] == 3
    assert rows["down"]["status"] == FAILED and rows["down"]["attempts"] == 3
    assert rows["down"]["error"] == "UNAVAILABLE: stage unreachable"
    assert sorted(sleeps) == [0.5, 0.5, 1.0, 1.0] and summary.failed == 1


def test_a_renderer_bug_fails_its_job_not_the_batch(store):
    put_manifest(store, "batches/b1/manifest.jsonl", [{"key": "a"}, {"key": "b"}])
    summary = run_batch(store, cfg(), Recorder(fail={"a": KeyError("boom")}))
    rows = {r["key"]: r for r in read_results(store, "batches/b1/results.jsonl")}
    assert rows["a"]["error"].startswith("INTERNAL: KeyError") and rows["b"]["status"] == SUCCEEDED
    assert summary.failed == 1


def test_rerun_skips_succeeded_and_reruns_failed_and_changed_jobs(store):
    lines = [{"key": "a", "v": 1}, {"key": "b", "v": 1}, {"key": "c", "v": 1}]
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    first = Recorder(fail={"b": NotFound("inputs/x.png does not exist")})
    assert run_batch(store, cfg(), first).failed == 1
    lines[2]["v"] = 2  # the operator edits job c: it must run again
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    second = Recorder()
    summary = run_batch(store, cfg(), second)
    assert sorted(second.calls) == ["b", "c"]
    assert (summary.succeeded, summary.failed, summary.skipped) == (3, 0, 1)
    assert all(r["status"] == SUCCEEDED for r in read_results(store, "batches/b1/results.jsonl"))


class Crash(BaseException):
    """Stands for the driver being killed (pod evicted) in the middle of a batch."""


def test_a_killed_run_resumes_from_per_job_state(store):
    put_manifest(store, "batches/b1/manifest.jsonl", [{"key": f"j{i}"} for i in range(6)])
    done: list[str] = []

    def dies_after_three(job: Job) -> list[str]:
        if len(done) >= 3:
            raise Crash()
        done.append(job.key)
        return []

    with pytest.raises(Crash):
        run_batch(store, cfg(concurrency=1), dies_after_three)
    assert all(store.exists(state_key(cfg(), k)) for k in done)
    rec = Recorder(delay=0)
    summary = run_batch(store, cfg(concurrency=2), rec)
    assert sorted(rec.calls) == sorted({f"j{i}" for i in range(6)} - set(done))
    assert summary.ok and summary.skipped == 3


def test_a_torn_state_object_is_ignored(store):
    put_manifest(store, "batches/b1/manifest.jsonl", [{"key": "a"}])
    store.put_bytes(state_key(cfg(), "a"), b"{not json")
    rec = Recorder(delay=0)
    assert run_batch(store, cfg(), rec).ok and rec.calls == ["a"]


# -- render_service_renderer against a real RenderService on a plain gRPC server -----------------------
class OutputStages(FakeStages):
    """FakeStages bound to each render (as GrpcExecutor is): `encode` writes renders/<id>/output.mp4 to the
    store; a face in `fail` (face key -> [task id, times, error type (default InvalidInput)]) fails at
    that task that many times."""

    def __init__(self, store, delay: float = 0.0) -> None:
        super().__init__()
        self.store, self.delay = store, delay
        self.fail: dict[str, list] = {}
        self.rec = None

    def for_render(self, rec):
        child = copy.copy(self)  # shares calls, fail and the store
        child.rec = rec
        return child

    async def run(self, task, deps):
        plan = self.fail.get(self.rec.spec.face_key)
        if plan and task.id == plan[0] and plan[1] > 0:
            plan[1] -= 1
            raise (plan[2] if len(plan) > 2 else InvalidInput)(f"bad frames in {task.id}")
        await asyncio.sleep(self.delay)
        res = await super().run(task, deps)
        if task.id != "encode":
            return res
        key = f"renders/{self.rec.render_id}/output.mp4"
        self.store.put_bytes(key, b"not really an mp4")
        return TaskResult(dict(res.outputs) | {"video": key})


class RenderHost:
    """A RenderService over `store` with OutputStages, on a plain gRPC server at `address`."""

    def __init__(self, store, address: str, stub, stages: OutputStages) -> None:
        self.store, self.address, self.stub, self.stages = store, address, stub, stages
        self.opened: list[RenderServiceRenderer] = []

    def renderer(self, cls=RenderServiceRenderer, **kw) -> RenderServiceRenderer:
        r = cls(StageEndpoint(self.address, "orchestrator"), **({"poll_s": 0.01} | kw))
        self.opened.append(r)
        return r

    def renders(self) -> list:
        return list(self.stub.ListRenders(render_pb2.ListRendersRequest(page_size=500)).renders)


@pytest.fixture
def host(store) -> Iterator[RenderHost]:
    stages = OutputStages(store)
    orch = Orchestrator(store, stages, Limits(default_concurrency=2), RetryPolicy(attempts=2, base_s=0.001))
    service = render_pb2.DESCRIPTOR.services_by_name["RenderService"]
    with plain_server(RenderServicer(orch), [service]) as ch:
        h = RenderHost(store, ch.lihq_address, render_pb2_grpc.RenderServiceStub(ch), stages)
        yield h
        for r in h.opened:
            r.close()


def render_line(key: str, face: str = "", **extra) -> dict:
    spec = {"face": {"key": face or f"inputs/{key}.png"}, "audio": {"key": "inputs/a.wav"}}
    return {"key": key, "render": spec | {"segmentFrames": 10}} | extra


def rows_by_key(store, results: str = "batches/b1/results.jsonl") -> dict[str, dict]:
    return {r["key"]: r for r in read_results(store, results)}


def test_render_lines_become_renders_whose_outputs_are_in_the_store(host, store):
    lines = [render_line(f"clip-{i}") for i in range(3)]
    lines[1]["webhook_url"] = "https://example.com/hook"
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    endpoints = StageEndpoints.from_env({"LIHQ_STAGE_ORCHESTRATOR_ADDRESS": host.address})
    renderer = render_service_renderer(endpoints, store)
    try:
        summary = run_batch(store, cfg(concurrency=3), renderer)
    finally:
        renderer.close()
    assert (summary.total, summary.succeeded, summary.failed) == (3, 3, 0)
    rows = read_results(store, "batches/b1/results.jsonl")
    assert [r["key"] for r in rows] == ["clip-0", "clip-1", "clip-2"]
    assert set(rows[0]) == {"key", "status", "error", "outputs", "attempts", "wall_s", "render_id"}
    assert {r["render_id"] for r in rows} == {r.render_id for r in host.renders()}
    for r in rows:
        assert r["status"] == SUCCEEDED and r["outputs"] == [f"renders/{r['render_id']}/output.mp4"]
        assert store.exists(r["outputs"][0]) and r["attempts"] == 1
    saved = RenderStore(store).load(rows[1]["render_id"])
    assert saved.spec.face_key == "inputs/clip-1.png" and saved.webhook_url == "https://example.com/hook"


def test_a_render_failing_at_a_stage_fails_its_job_with_the_stage_and_its_code_named(host, store):
    host.stages.fail["inputs/bad.png"] = ["wav2lip/1", 99]
    host.stages.fail["inputs/down.png"] = ["gfpgan1/0", 99, Unavailable]
    lines = [render_line("a"), render_line("b", face="inputs/bad.png"), render_line("c")]
    lines.append(render_line("d", face="inputs/down.png"))
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    sleeps: list[float] = []
    summary = run_batch(store, cfg(), host.renderer(), sleep=sleeps.append)
    rows = rows_by_key(store)
    assert (summary.succeeded, summary.failed) == (2, 2)
    bad, down = rows["b"], rows["d"]
    assert bad["status"] == FAILED and bad["attempts"] == 1 and bad["outputs"] == []
    assert bad["error"].startswith(f"INVALID_ARGUMENT: render {bad['render_id']} failed at stage wav2lip: ")
    assert "bad frames in wav2lip/1" in bad["error"]
    # the stage's own code, though retryable, is not retried in this run: the render has ended
    assert down["error"].startswith(f"UNAVAILABLE: render {down['render_id']} failed at stage gfpgan: ")
    assert down["attempts"] == 1 and sleeps == []
    assert rows["a"]["status"] == rows["c"]["status"] == SUCCEEDED


def test_a_failed_render_without_an_error_code_is_a_failed_precondition():
    render = render_pb2.Render(
        render_id="r1", state=render_pb2.RENDER_STATE_FAILED, error="boom", error_stage="encode"
    )
    with pytest.raises(FailedPrecondition, match="render r1 failed at stage encode: boom") as ei:
        RenderServiceRenderer._outcome(render)
    assert ei.value.render_id == "r1" and not ei.value.retryable


def test_bad_render_lines_fail_their_job_with_invalid_argument_and_the_batch_goes_on(host, store):
    refused_here = {  # key -> line, what the error says
        "stage-call-line": (
            {"op": "lihq.v1.MediaService/Encode", "request": {}},
            "unknown field(s) ['op', 'request']",
        ),
        "no-render": ({}, "`render` must be a lihq.v1.RenderSpec object"),
        "not-an-object": ({"render": ["inputs/a.png"]}, "`render` must be a lihq.v1.RenderSpec object"),
        "unknown-field": (
            {"render": {"face": {"key": "inputs/a.png"}, "colour": 1}},
            'no field named "colour"',
        ),
        "typo": (render_line("x", webhok_url="https://example.com"), "unknown field(s) ['webhok_url']"),
    }
    lines = [line | {"key": key} for key, (line, _) in refused_here.items()]
    lines += [render_line("x") | {"key": "three-passes"}, render_line("good")]
    lines[-2]["render"]["passes"] = 3  # valid JSON for a RenderSpec; the orchestrator refuses it
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    summary = run_batch(store, cfg(), host.renderer(), sleep=lambda s: None)
    rows = rows_by_key(store)
    assert (summary.succeeded, summary.failed) == (1, 6) and rows["good"]["status"] == SUCCEEDED
    for key, (_, needle) in refused_here.items():
        assert rows[key]["status"] == FAILED and rows[key]["attempts"] == 1, rows[key]
        assert (
            rows[key]["error"].startswith(f"INVALID_ARGUMENT: job {key!r}: ") and needle in rows[key]["error"]
        )
    refused = rows["three-passes"]
    assert refused["error"].startswith("INVALID_ARGUMENT: ") and "passes" in refused["error"]
    assert refused["attempts"] == 1 and "render_id" not in refused  # not retried, nothing created
    assert len(host.renders()) == 1


def test_rerun_after_a_failed_render_reruns_only_that_job_and_duplicates_nothing(host, store):
    host.stages.fail["inputs/flaky.png"] = ["fomm1/0", 1]  # fails once, then the stage works
    lines = [render_line("a"), render_line("b", face="inputs/flaky.png"), render_line("c")]
    put_manifest(store, "batches/b1/manifest.jsonl", lines)
    calls: list[str] = []
    renderer = host.renderer()

    def counted(job: Job):
        calls.append(job.key)
        return renderer(job)

    assert run_batch(store, cfg(), counted).failed == 1
    first = rows_by_key(store)
    assert (
        first["b"]["status"] == FAILED and "at stage fomm" in first["b"]["error"] and len(host.renders()) == 3
    )

    calls.clear()
    summary = run_batch(store, cfg(), counted)
    assert calls == ["b"] and (summary.succeeded, summary.skipped) == (3, 2)
    second = rows_by_key(store)
    assert second["a"] == first["a"] and second["c"] == first["c"]
    assert second["b"]["status"] == SUCCEEDED and second["b"]["render_id"] != first["b"]["render_id"]
    renders = host.renders()  # the failed render, plus one succeeded render per job
    assert len(renders) == 4
    ok = [r.render_id for r in renders if r.state == render_pb2.RENDER_STATE_SUCCEEDED]
    assert sorted(ok) == sorted(second[k]["render_id"] for k in "abc")

    calls.clear()
    assert run_batch(store, cfg(), counted).skipped == 3 and calls == [] and len(host.renders()) == 4
    # a retried call of the same job (same line) finds the same render instead of making another
    [job] = [
        j
        for j in parse_manifest(store.get_bytes(cfg().manifest_key).decode(), cfg().manifest_key)
        if j.key == "a"
    ]
    assert renderer(job).render_id == first["a"]["render_id"] and len(host.renders()) == 4


def test_a_killed_batch_resumes_and_reattaches_to_the_render_in_flight(host, store):
    put_manifest(store, "batches/b1/manifest.jsonl", [render_line(f"j{i}") for i in range(4)])
    created: dict[str, str] = {}

    class DiesAfterCreatingJ2(RenderServiceRenderer):
        def create(self, job, request):
            render = super().create(job, request)
            created[job.key] = render.render_id
            if job.key == "j2":
                raise Crash()  # the driver dies with j2's render running on the orchestrator
            return render

    with pytest.raises(Crash):
        run_batch(store, cfg(concurrency=1), host.renderer(DiesAfterCreatingJ2))
    assert sorted(created) == ["j0", "j1", "j2"] and not store.exists(state_key(cfg(), "j2"))
    summary = run_batch(store, cfg(concurrency=2), host.renderer())
    assert summary.ok and summary.skipped == 2
    rows = rows_by_key(store)
    assert rows["j2"]["render_id"] == created["j2"]  # the same render, followed to its end
    assert len(host.renders()) == 4 and all(store.exists(r["outputs"][0]) for r in rows.values())


def test_a_dropped_watch_falls_back_to_get_render_and_watches_again(host, store):
    host.stages.delay = 0.02  # a render lasts well over several watch windows
    put_manifest(store, "batches/b1/manifest.jsonl", [render_line("slow")])
    methods: list[str] = []

    class Recording(RenderServiceRenderer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            create, get = self.client.create, self.client.get  # the renderer calls through lihq.client

            def recorded(name, call):
                def wrapper(*a, **k):
                    methods.append(name)
                    return call(*a, **k)

                return wrapper

            self.client.create, self.client.get = recorded("create", create), recorded("get", get)

    summary = run_batch(store, cfg(), host.renderer(Recording, watch_window_s=0.03))
    assert summary.ok and rows_by_key(store)["slow"]["attempts"] == 1
    assert methods[0] == "create" and methods.count("get") >= 2


def test_an_unreachable_orchestrator_is_retried_then_recorded_as_unavailable(store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    put_manifest(store, "batches/b1/manifest.jsonl", [render_line("a")])
    renderer = RenderServiceRenderer(StageEndpoint(f"127.0.0.1:{port}", "orchestrator"), create_timeout_s=5)
    sleeps: list[float] = []
    try:
        summary = run_batch(store, cfg(max_attempts=3, backoff_s=0.1), renderer, sleep=sleeps.append)
    finally:
        renderer.close()
    [row] = read_results(store, "batches/b1/results.jsonl")
    assert summary.failed == 1 and row["attempts"] == 3 and row["error"].startswith("UNAVAILABLE")
    assert sleeps == [0.1, 0.2] and "render_id" not in row


def test_idempotency_keys_name_the_manifest_the_line_and_the_generation():
    [a] = parse_manifest(json.dumps(render_line("a")), "batches/b1/manifest.jsonl")
    [same] = parse_manifest(json.dumps(render_line("a")), "batches/b1/manifest.jsonl")
    [other_batch] = parse_manifest(json.dumps(render_line("a")), "batches/b2/manifest.jsonl")
    [edited] = parse_manifest(
        json.dumps(render_line("a", face="inputs/new.png")), "batches/b1/manifest.jsonl"
    )
    assert idempotency_key(a) == idempotency_key(same)
    keys = {idempotency_key(a), idempotency_key(a, 1), idempotency_key(other_batch), idempotency_key(edited)}
    assert len(keys) == 4


def test_the_k8s_example_render_manifest_is_valid():
    text = (REPO / "k8s/examples/batch-render/manifest.jsonl").read_text()
    jobs = parse_manifest(text)
    assert jobs and all(render_request(j).renders[0].face.key for j in jobs)


def test_the_k8s_batch_job_runs_render_lines_through_render_service(host, store, tmp_path):
    """The command of the RayJob with k8s/batch/batch.env's renderer, as a process."""
    batch_env = dict(
        line.split("=", 1) for line in (REPO / "k8s/batch/batch.env").read_text().splitlines() if "=" in line
    )
    assert batch_env["LIHQ_BATCH_RENDERER"] == "orchestrator.batch.render_service:render_service_renderer"
    put_manifest(store, "batches/b1/manifest.jsonl", [render_line("a"), render_line("b")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIHQ_S3_", "LIHQ_STAGE"))}
    env |= batch_env | {
        "LIHQ_BATCH_MANIFEST": "batches/b1/manifest.jsonl",
        "LIHQ_BATCH_RESULTS": "batches/b1/results.jsonl",
        "LIHQ_STORE_DIR": str(tmp_path / "store"),
        "LIHQ_BUCKET": "lihq-batch",
        "LIHQ_STAGE_ORCHESTRATOR_ADDRESS": host.address,
    }
    done = run_cli(env)
    assert done.returncode == 0, done.stderr
    assert "2 jobs, 2 succeeded (0 from earlier runs), 0 failed" in done.stdout
    assert all(store.exists(r["outputs"][0]) for r in read_results(store, "batches/b1/results.jsonl"))


# -- against a real media stage (plain gRPC) and the S3 server ---------------------------------------
@pytest.fixture(scope="module")
def media_on_s3(s3_server, tmp_path_factory):
    """(address, store, env) with a MediaService on a plain server over a fresh S3 bucket."""
    from lihq.storage import S3Store

    bucket = "batch-it"
    store = S3Store(s3_server.s3config(), bucket)
    env = dict(os.environ)
    env.update(
        LIHQ_S3_ENDPOINT=s3_server.endpoint,
        LIHQ_S3_ACCESS_KEY=s3_server.access_key,
        LIHQ_S3_SECRET_KEY=s3_server.secret_key,
        LIHQ_BUCKET=bucket,
    )
    video = lavfi_video(tmp_path_factory.mktemp("batch") / "ref.mp4", seconds=2.0, size="64x48", rate=25)
    store.put_file("uploads/ref.mp4", video)
    with plain_media_server(store) as address:
        yield address, store, env


def cut(key: str, video: str, offset: float) -> dict:
    req = {"video": {"key": video}, "offsetS": offset, "durationS": 0.4, "width": 32, "height": 32}
    return {"key": key, "op": "lihq.v1.MediaService/CutVideo", "request": req | {"segmentFrames": 5}}


def run_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "orchestrator.batch", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_entrypoint_runs_a_manifest_then_resumes_after_a_partial_failure(media_on_s3):
    address, store, env = media_on_s3
    env = env | {"LIHQ_STAGES_ADDRESS": address}
    manifest = [
        cut("cut-a", "uploads/ref.mp4", 0.0),
        cut("cut-b", "uploads/ref.mp4", 0.8),
        cut("cut-late", "uploads/late.mp4", 0.0),  # its input is uploaded only after the first run
    ]
    put_manifest(store, "batches/it/manifest.jsonl", manifest)
    args = ["--manifest", "batches/it/manifest.jsonl", "--results", "batches/it/results.jsonl"]
    first = run_cli(env, *args, "--concurrency", "2")
    assert first.returncode == 1, first.stderr
    assert "3 jobs, 2 succeeded (0 from earlier runs), 1 failed" in first.stdout
    rows = {r["key"]: r for r in read_results(store, "batches/it/results.jsonl")}
    assert rows["cut-late"]["status"] == FAILED and rows["cut-late"]["error"].startswith("NOT_FOUND")
    assert len(rows["cut-a"]["outputs"]) == 2 and all(store.exists(k) for k in rows["cut-a"]["outputs"])
    assert rows["cut-a"]["outputs"] != rows["cut-b"]["outputs"]

    store.put_bytes("uploads/late.mp4", store.get_bytes("uploads/ref.mp4"))
    second = run_cli(env, *args)
    assert second.returncode == 0, second.stderr
    assert "3 jobs, 3 succeeded (2 from earlier runs), 0 failed" in second.stdout
    rows2 = {r["key"]: r for r in read_results(store, "batches/it/results.jsonl")}
    assert rows2["cut-a"] == rows["cut-a"]  # not re-run: the same record
    assert rows2["cut-late"]["status"] == SUCCEEDED


@pytest.mark.integration
def test_bad_ops_and_requests_fail_their_job_with_invalid_argument(media_on_s3):
    address, store, _ = media_on_s3
    renderer = StageCallRenderer(StageEndpoints(address))
    put_manifest(
        store,
        "batches/bad/manifest.jsonl",
        [
            {"key": "no-method", "op": "lihq.v1.MediaService/Nope", "request": {}},
            {"key": "no-service", "op": "lihq.v1.PaintService/Draw", "request": {}},
            {"key": "bad-field", "op": "lihq.v1.MediaService/CutVideo", "request": {"colour": 1}},
            {
                "key": "bad-value",
                **{k: v for k, v in cut("x", "uploads/ref.mp4", -1.0).items() if k != "key"},
            },
        ],
    )
    try:
        run_batch(store, BatchConfig("batches/bad/manifest.jsonl", "batches/bad/results.jsonl"), renderer)
    finally:
        renderer.close()
    rows = {r["key"]: r for r in read_results(store, "batches/bad/results.jsonl")}
    assert all(r["status"] == FAILED and r["error"].startswith("INVALID_ARGUMENT") for r in rows.values())
    assert "no unary method 'Nope'" in rows["no-method"]["error"]
    assert "no LIHQ stage implements 'lihq.v1.PaintService'" in rows["no-service"]["error"]
    assert "colour" in rows["bad-field"]["error"]
    assert "offset_s" in rows["bad-value"]["error"]
