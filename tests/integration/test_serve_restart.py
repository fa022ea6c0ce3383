"""`lihq serve` (real Ray Serve + its gRPC proxy) killed with SIGKILL mid-render and started again: the
orchestrator app resumes the render as it deploys, while the stage apps are still deploying (the proxy
answers NOT_FOUND "Application 'x' not found." until they are: retried as transient), and the render
finishes with the bytes an undisturbed render of the same request gives.

Expensive on 2 cores (three Serve starts' worth of work): the render is tiny (~9 frames, 1 pass, no
upscale) and only the apps it needs are deployed.
"""

from __future__ import annotations

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
        cmd = [sys.executable, "-m", "lihq.cli.main", "serve", "--config", str(self.config)]
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


@pytest.fixture
def serve(tmp_path, synthetic_weights) -> Serve:
    cfg = yaml.safe_load((REPO / "serve_configs" / "local.yaml").read_text())
    cfg["applications"] = [a for a in cfg["applications"] if a["name"] in APPS]
    for app in cfg["applications"]:
        if app["name"] == "orchestrator":
            app["args"] = dict(app.get("args") or {}, synthetic=True, retry={"attempts": 12, "max_s": 4})
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump(cfg))
    s = Serve(tmp_path, config, synthetic_weights)
    yield s
    s.stop()


def test_a_killed_lihq_serve_resumes_the_render_and_gives_the_same_bytes(serve, tmp_path):
    Image.fromarray(astronaut()).save(tmp_path / "face.png")
    speech = espeak_wav(tmp_path / "speech.wav", "Hi there.", wpm=300)  # ~9 frames
    serve.start()
    stub = serve.stub()
    face = stub.UploadInput(chunks(tmp_path / "face.png"), metadata=MD, timeout=60).object
    audio = stub.UploadInput(chunks(speech), metadata=MD, timeout=60).object
    spec = render_pb2.RenderSpec(face=face, audio=audio, passes=1, upscale=1, segment_frames=3)
    req = render_pb2.CreateRenderRequest(renders=[spec])
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
