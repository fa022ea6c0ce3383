"""`lihq serve` (real Ray Serve + its gRPC proxy) killed with SIGKILL mid-render and started again: the
orchestrator app resumes the render as it deploys, while the stage apps are still deploying (the proxy
answers NOT_FOUND "Application 'x' not found." until they are: retried as transient), and the render
finishes with the bytes an undisturbed render of the same request gives.

Expensive on 2 cores (three Serve starts' worth of work): the render is tiny (~9 frames, 1 pass, no
upscale) and only the apps it needs are deployed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from PIL import Image
from skimage.data import astronaut

from lihq.storage import FileStore
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.state import RenderStore
from orchestrator.uploads import chunks
from tests.integration.conftest import REPO, free_port, wait_healthy
from tests.mediafiles import espeak_wav

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]
APPS = ("media", "fomm", "wav2lip", "gfpgan", "orchestrator")
MD = (("application", "orchestrator"),)
BUCKET = "lihq-restart"


class Serve:
    def __init__(self, root: Path, config: Path, weights: Path) -> None:
        self.root, self.config, self.weights = root, config, weights
        self.grpc_port, self.http_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.store = FileStore(root / "store", BUCKET)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIHQ_S3_")}
        env.update(
            LIHQ_HOME=str(self.root / "home"),
            LIHQ_STORE_DIR=str(self.root / "store"),
            LIHQ_BUCKET=BUCKET,
            LIHQ_WEIGHTS_DIR=str(self.weights),
            LIHQ_RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, wait_for: tuple[str, ...] = APPS) -> None:
        log = self.root / "serve.log"
        cmd = [sys.executable, "-m", "lihq_cli.main", "serve", "--config", str(self.config)]
        cmd += ["--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)]
        cmd += ["--insecure-no-auth"]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        for app in wait_for:
            wait_healthy(self.address, app, self.proc, log, timeout=600)

    def kill(self) -> None:
        """SIGKILL the whole session: the CLI, Ray's head processes and every replica."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        time.sleep(3)  # let the kernel release the ports

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
            with_pg = self.proc.pid
            try:
                os.killpg(with_pg, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stub(self) -> render_pb2_grpc.RenderServiceStub:
        return render_pb2_grpc.RenderServiceStub(grpc.insecure_channel(self.address))

    def finished(self, render_id: str) -> set[str]:
        return set(RenderStore(self.store).load_results(render_id))

    def wait_done(self, render_id: str, timeout: float = 900) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = self.stub().GetRender(
                    render_pb2.GetRenderRequest(render_id=render_id), metadata=MD, timeout=10
                )
            except grpc.RpcError:
                time.sleep(1)
                continue
            assert r.state not in (render_pb2.RENDER_STATE_FAILED, render_pb2.RENDER_STATE_CANCELLED), (
                f"{r.error_code} at {r.error_stage}: {r.error}"
            )
            if r.state == render_pb2.RENDER_STATE_SUCCEEDED:
                return self.store.get_bytes(r.output.key)
            time.sleep(1)
        raise TimeoutError(f"render {render_id} did not finish")


def serve_for(tmp_path: Path, weights: Path, replicas: int = 1, **orchestrator_args) -> Serve:
    cfg = yaml.safe_load((REPO / "serve_configs" / "local.yaml").read_text())
    cfg["applications"] = [a for a in cfg["applications"] if a["name"] in APPS]
    for app in cfg["applications"]:
        if app["name"] == "orchestrator":
            args = dict(synthetic=True, retry={"attempts": 12, "max_s": 4}, **orchestrator_args)
            app["args"] = dict(app.get("args") or {}, **args)
            for d in app.get("deployments") or []:
                if d["name"] == "RenderService":
                    d["num_replicas"] = replicas
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return Serve(tmp_path, config, weights)


@pytest.fixture
def serve(tmp_path, synthetic_weights) -> Serve:
    s = serve_for(tmp_path, synthetic_weights)
    yield s
    s.stop()


def tiny_request(stub, tmp_path: Path) -> render_pb2.CreateRenderRequest:
    """A ~9-frame render of one pass, no upscale, from freshly uploaded inputs."""
    Image.fromarray(astronaut()).save(tmp_path / "face.png")
    speech = espeak_wav(tmp_path / "speech.wav", "Hi there.", wpm=300)
    face = stub.UploadInput(chunks(tmp_path / "face.png"), metadata=MD, timeout=60).object
    audio = stub.UploadInput(chunks(speech), metadata=MD, timeout=60).object
    spec = render_pb2.RenderSpec(face=face, audio=audio, passes=1, upscale=1, segment_frames=3)
    return render_pb2.CreateRenderRequest(renders=[spec])


def test_a_killed_lihq_serve_resumes_the_render_and_gives_the_same_bytes(serve, tmp_path):
    serve.start()
    stub = serve.stub()
    req = tiny_request(stub, tmp_path)
    [r] = stub.CreateRender(req, metadata=MD, timeout=60).renders

    deadline = time.monotonic() + 600
    while not any(t.startswith("wav2lip/") for t in serve.finished(r.render_id)):
        assert time.monotonic() < deadline, "no wav2lip segment finished"
        time.sleep(0.5)
    serve.kill()
    before = serve.finished(r.render_id)
    assert "encode" not in before

    # only the orchestrator is awaited: it resumes while the stage apps may still be deploying
    serve.start(wait_for=("orchestrator",))
    resumed = serve.wait_done(r.render_id)
    assert before <= serve.finished(r.render_id)

    # the undisturbed render of the same request, every stage output computed again: wipe what the
    # first render produced (caches, renders), keep the uploaded inputs
    for child in (serve.root / "store" / BUCKET).iterdir():
        if child.is_dir() and child.name not in ("inputs", "tenants"):
            shutil.rmtree(child)
    [again] = serve.stub().CreateRender(req, metadata=MD, timeout=60).renders
    assert serve.wait_done(again.render_id) == resumed


def session_processes(serve: Serve, title: str) -> list[int]:
    """Pids of this `lihq serve` session's processes whose title starts with `title` (Ray names its
    workers `ray::<Actor>...`); other sessions on the machine are never touched."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            pid = int(d.name)
            if cmd.startswith(title) and serve.proc.pid in (os.getsid(pid), os.getpgid(pid)):
                out.append(pid)
        except (OSError, ProcessLookupError):
            continue
    return out


def task_log_ids(serve: Serve, render_id: str) -> list[str]:
    """Every task id of the render's task log, entry by entry (a task written twice shows twice)."""
    ids: list[str] = []
    for info in serve.store.list(f"renders/{render_id}/tasks/"):
        ids += list(json.loads(serve.store.get_bytes(info.key)))
    return ids


@pytest.fixture
def serve_actors(tmp_path, synthetic_weights) -> Serve:
    s = serve_for(tmp_path, synthetic_weights, replicas=2, render_actors=True)
    yield s
    s.stop()


def test_two_replicas_with_render_actors_under_lihq_serve(serve_actors, tmp_path):
    """`render_actors: true` with 2 RenderService replicas behind Serve's proxy: every call may reach
    either replica; a render is cancelled from whichever replica gets CancelRender; a render whose actor
    is SIGKILLed mid-render is restarted by Ray, resumes from its task log and finishes once (no task
    is written to the log twice: nothing finished before the kill ran again)."""
    serve = serve_actors
    serve.start()
    assert len(session_processes(serve, "ray::ServeReplica:orchestrator:RenderService")) == 2
    stub = serve.stub()
    req = tiny_request(stub, tmp_path)

    [b] = stub.CreateRender(req, metadata=MD, timeout=60).renders
    cancel = render_pb2.CancelRenderRequest(render_id=b.render_id)
    assert stub.CancelRender(cancel, metadata=MD, timeout=180).state == render_pb2.RENDER_STATE_CANCELLED
    get_b = render_pb2.GetRenderRequest(render_id=b.render_id)
    assert {stub.GetRender(get_b, metadata=MD, timeout=10).state for _ in range(4)} == {
        render_pb2.RENDER_STATE_CANCELLED
    }

    [a] = stub.CreateRender(req, metadata=MD, timeout=60).renders
    deadline = time.monotonic() + 600
    while not any(t.startswith("wav2lip/") for t in serve.finished(a.render_id)):
        assert time.monotonic() < deadline, "no wav2lip segment finished"
        time.sleep(0.5)
    actors = session_processes(serve, "ray::RenderActor")
    while len(actors) != 1:  # the cancelled render's actor has ended itself
        assert time.monotonic() < deadline, f"render actors: {actors}"
        time.sleep(0.5)
        actors = session_processes(serve, "ray::RenderActor")
    before = serve.finished(a.render_id)
    assert "encode" not in before
    os.kill(actors[0], signal.SIGKILL)

    serve.wait_done(a.render_id)
    ids = task_log_ids(serve, a.render_id)
    assert before <= set(ids) and "encode" in ids
    assert len(ids) == len(set(ids)), sorted(t for t in set(ids) if ids.count(t) > 1)
    get_a = render_pb2.GetRenderRequest(render_id=a.render_id)
    assert {stub.GetRender(get_a, metadata=MD, timeout=10).state for _ in range(4)} == {
        render_pb2.RENDER_STATE_SUCCEEDED
    }
