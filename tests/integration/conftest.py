"""A real `lihq serve` (local Ray + Serve gRPC proxy + the stage apps) against the real S3 server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
APPS = (
    "media",
    "wav2lip",
    "qvi",
    "fomm",
    "modnet",
    "tts",
    "orchestrator",
)  # the apps of serve_configs/local.yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServeProcess:
    address: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


def wait_healthy(address: str, app: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"lihq serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(), metadata=(("application", app),), timeout=5)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(1.0)
    raise TimeoutError(f"{app} not healthy at {address} after {timeout} s:\n{log.read_text()[-4000:]}")


SYNTHETIC = ("fomm", "wav2lip_gan", "s3fd", "qvi", "gfpgan-1.3", "gfpgan-1.4", "facexlib", "modnet")


@pytest.fixture(scope="session")
def synthetic_weights(tmp_path_factory) -> Path:
    """Seed-1 synthetic checkpoints in the official layouts, for every model that has a manifest."""
    from lihq.weights.synth import synthesize

    wdir = tmp_path_factory.mktemp("weights")
    for name in SYNTHETIC:
        synthesize(name, 1, wdir)
    return wdir


@pytest.fixture(scope="session")
def serve_stack(s3_server, synthetic_weights, tmp_path_factory) -> Iterator[ServeProcess]:
    grpc_port, http_port = free_port(), free_port()
    tmp = tmp_path_factory.mktemp("serve")
    env = dict(os.environ)
    env.update(
        LIHQ_S3_ENDPOINT=s3_server.endpoint,
        LIHQ_S3_ACCESS_KEY=s3_server.access_key,
        LIHQ_S3_SECRET_KEY=s3_server.secret_key,
        LIHQ_BUCKET="lihq-it",
        LIHQ_HOME=str(tmp / "home"),
        LIHQ_RAY_AUTH_MODE="disabled",
        LIHQ_WEIGHTS_DIR=str(synthetic_weights),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    log = tmp / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "lihq.cli.main",
        "serve",
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    sp = ServeProcess(f"127.0.0.1:{grpc_port}", env, proc, log)
    try:
        for app in APPS:
            wait_healthy(sp.address, app, proc, log, timeout=400)
        yield sp
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
