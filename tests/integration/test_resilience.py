"""Resume and stage failures against the real stage servicers (synthetic weights) over real gRPC.

The stages run in one process (`bench/stagehost.py`: the apps of serve_configs as
`lihq host` builds them, every call recorded); the orchestrator runs in another (`lihq host --app
orchestrator`), so each can be killed with SIGKILL mid-render. The undisturbed render and the disturbed
one share the cluster (one start of each process: the costly part on 2 cores); everything the first
produced is deleted before the second, so nothing is shared through the stages' content-addressed
caches, and the second's output must be byte-identical to the first's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
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
from tests.integration.conftest import REPO, free_port
from tests.mediafiles import espeak_wav

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
STAGE_APPS = ("media", "fomm", "wav2lip", "gfpgan")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("resilience-inputs")
    Image.fromarray(astronaut()).save(d / "face.png")
    return d / "face.png", espeak_wav(d / "speech.wav", "Hi there.", wpm=300)  # ~9 frames


@pytest.fixture(scope="module")
def serve_config(tmp_path_factory) -> Path:
    """serve_configs/local.yaml with the orchestrator in synthetic mode and a retry budget that outlasts
    a stage restart (~10 s here)."""
    cfg = yaml.safe_load((REPO / "serve_configs" / "local.yaml").read_text())
    for app in cfg["applications"]:
        if app["name"] == "orchestrator":
            app["args"] = dict(app.get("args") or {}, synthetic=True, retry={"attempts": 12, "max_s": 4})
    path = tmp_path_factory.mktemp("resilience-config") / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class Cluster:
    """One store; a stage host and an orchestrator host on fixed ports (restartable)."""

    root: Path
    config: Path
    weights: Path
    stage_port: int
    orch_port: int
    stages: subprocess.Popen | None = None
    orch: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIHQ_S3_")}
        env.update(
            LIHQ_HOME=str(self.root / "home"),
            LIHQ_STORE_DIR=str(self.root / "store"),
            LIHQ_BUCKET="lihq",
            LIHQ_WEIGHTS_DIR=str(self.weights),
            LIHQ_STAGES_ADDRESS=f"127.0.0.1:{self.stage_port}",
            OMP_NUM_THREADS="2",
            PYTHONUNBUFFERED="1",
        )
        return env

    @property
    def calls_log(self) -> Path:
        return self.root / "calls.jsonl"

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        return subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, proc: subprocess.Popen, name: str, port: int) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{(self.root / f'{name}.log').read_text()[-3000:]}")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                try:
                    grpc.channel_ready_future(ch).result(timeout=1)
                    return
                except grpc.FutureTimeoutError:
                    pass
        raise TimeoutError(f"{name} not ready on {port}")

    def start_stages(self, fail_first: int = 0) -> None:
        cmd = [sys.executable, "-m", "bench.stagehost", str(self.config)]
        cmd += [f"127.0.0.1:{self.stage_port}", str(self.calls_log), str(fail_first), *STAGE_APPS]
        self.stages = self._spawn("stages", cmd)
        self._wait_ready(self.stages, "stages", self.stage_port)

    def start_orchestrator(self) -> None:
        cmd = [sys.executable, "-m", "lihq_cli.main", "host", "--config", str(self.config)]
        cmd += ["--app", "orchestrator", "--address", f"127.0.0.1:{self.orch_port}"]
        self.orch = self._spawn("orchestrator", cmd)
        self._wait_ready(self.orch, "orchestrator", self.orch_port)

    @staticmethod
    def kill(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stub(self) -> render_pb2_grpc.RenderServiceStub:
        return render_pb2_grpc.RenderServiceStub(grpc.insecure_channel(f"127.0.0.1:{self.orch_port}"))

    def record(self, render_id: str) -> dict:
        path = self.root / "store" / "lihq" / "renders" / render_id / "render.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def finished(self, render_id: str) -> dict[str, dict]:
        """The render's task log: outputs of every task it recorded as finished."""
        return RenderStore(FileStore(self.root / "store", "lihq")).load_results(render_id)

    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.calls_log.read_text().splitlines()]


@pytest.fixture
def cluster(tmp_path, synthetic_weights, serve_config):
    c = Cluster(tmp_path, serve_config, synthetic_weights, free_port(), free_port())
    yield c
    Cluster.kill(c.orch)
    Cluster.kill(c.stages)


def create(c: Cluster, inputs: tuple[Path, Path]) -> str:
    stub = c.stub()
    face = stub.UploadInput(chunks(inputs[0]), timeout=60).object
    audio = stub.UploadInput(chunks(inputs[1]), timeout=60).object
    spec = render_pb2.RenderSpec(face=face, audio=audio, passes=1, upscale=1, segment_frames=3)
    [r] = stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec]), timeout=120).renders
    return r.render_id


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def finish(c: Cluster, render_id: str) -> bytes:
    """Wait for SUCCEEDED through GetRender; return the output's bytes."""
    state = {}

    def done() -> bool:
        try:
            r = c.stub().GetRender(render_pb2.GetRenderRequest(render_id=render_id), timeout=10)
        except grpc.RpcError:
            return False
        state["r"] = r
        assert r.state not in (render_pb2.RENDER_STATE_FAILED, render_pb2.RENDER_STATE_CANCELLED), r.error
        return r.state == render_pb2.RENDER_STATE_SUCCEEDED

    wait_until(done, 900, f"render {render_id}")
    return (c.root / "store" / "lihq" / state["r"].output.key).read_bytes()


def segment_tasks_done(c: Cluster, render_id: str, stage: str) -> list[str]:
    return [t for t in c.finished(render_id) if t.startswith(f"{stage}/")]


def forget_outputs(c: Cluster) -> None:
    """Everything the stages and the orchestrator produced, gone (the uploaded inputs stay), so the next
    render computes every stage output again: its bytes are compared with the first render's."""
    for child in (c.root / "store" / "lihq").iterdir():
        if child.is_dir() and child.name not in ("inputs", "tenants"):
            shutil.rmtree(child)


def test_killed_orchestrator_and_stage_replica_mid_render_give_identical_output_without_recomputing(
    cluster, inputs
):
    """One stage host (every method answers UNAVAILABLE once, then works) and one orchestrator. First an
    undisturbed render: the expected bytes and call counts. Then, with every output forgotten, the same
    render again, disturbed twice: the orchestrator is SIGKILLed after a Wav2Lip segment and restarted
    (it resumes every unfinished render at start, recomputing nothing it had recorded), then the stage
    host is SIGKILLed after another segment and comes back cold on the same address (its first calls
    injected UNAVAILABLE again). The output is byte-identical and every failure was retried through."""
    c = cluster
    c.start_stages(fail_first=1)
    c.start_orchestrator()
    expected = finish(c, create(c, inputs))
    baseline = [x for x in c.calls() if x["outcome"] == "ok"]
    undisturbed_calls = len(c.calls())
    forget_outputs(c)

    rid = create(c, inputs)
    wait_until(lambda: len(segment_tasks_done(c, rid, "wav2lip")) >= 1, 600, "a finished wav2lip segment")
    c.kill(c.orch)
    finished = c.finished(rid)  # what the killed orchestrator had recorded
    assert finished and "encode" not in finished
    c.start_orchestrator()  # resumes every unfinished render at start

    wait_until(lambda: len(c.finished(rid)) > len(finished), 600, "a task finished after the restart")
    c.kill(c.stages)  # a stage replica dies mid-render ...
    assert "encode" not in c.finished(rid)
    time.sleep(2)
    c.start_stages(fail_first=1)  # ... and comes back on the same address, cold
    assert finish(c, rid) == expected

    calls = c.calls()[undisturbed_calls:]
    produced = Counter(k for call in calls if call["outcome"] == "ok" for k in call["outputs"])
    for task, outputs in finished.items():
        keys = [
            v for v in outputs.values() if isinstance(v, str) and "/" in v and not v.startswith("inputs/")
        ]
        for key in keys:
            assert produced[key] == 1, f"{task} was recomputed after the restart ({key})"
    ok = [x for x in calls if x["outcome"] == "ok"]
    assert len(ok) < len(baseline) + 16  # at most the calls in flight at the two kills repeat
    injected = {x["method"] for x in c.calls() if x["outcome"] == "injected"}
    assert injected == {x["method"] for x in c.calls() if x["outcome"] == "ok"}  # each one retried through
    assert not [x for x in c.calls() if x["outcome"] == "error"]
