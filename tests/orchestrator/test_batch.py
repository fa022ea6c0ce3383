"""The batch job: manifest parsing, bounded concurrency, results, retries and resuming.

Unit tests use a FileStore and fake renderers; the integration tests run the real entry point (the
command the k8s RayJob runs) against the S3 server and a MediaService on a plain gRPC server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lihq.errors import InvalidInput, NotFound, Unavailable
from lihq.stages import StageEndpoints
from lihq.storage import FileStore
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
from tests.k8s.plainmedia import plain_media_server
from tests.mediafiles import lavfi_video

REPO = Path(__file__).resolve().parents[2]


def put_manifest(store, key: str, lines: list[dict]) -> None:
    store.put_bytes(key, ("\n".join(json.dumps(x) for x in lines) + "\n").encode())


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
