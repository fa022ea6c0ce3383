"""A real `lihq serve` (local Ray + Serve gRPC proxy + the stage apps) against the real S3 server."""

from __future__ import annotations

import os
import secrets
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
    "gfpgan",
    "orchestrator",
)  # the apps of serve_configs/local.yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


INTERNAL_TOKEN = secrets.token_urlsafe(24)  # the serve_stack's internal stage credential


def internal_md(app: str) -> tuple[tuple[str, str], ...]:
    """Metadata of a direct stage call: the app and the internal credential (as the orchestrator sends)."""
    from lihq.grpc.auth import INTERNAL_HEADER

    return (("application", app), (INTERNAL_HEADER, INTERNAL_TOKEN))


@dataclass
class ServeProcess:
    address: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)

    # -- credentials (`lihq serve` made the admin token on its first start) ---------------------------
    def admin_token(self) -> str:
        return (Path(self.env["LIHQ_HOME"]) / "api-token").read_text().strip()

    def md(self, token: str | None = None, app: str = "orchestrator") -> tuple[tuple[str, str], ...]:
        """RenderService metadata: the app and `authorization: Bearer <token>` (default: the admin's)."""
        return (("application", app), ("authorization", f"Bearer {token or self.admin_token()}"))

    def internal_md(self, app: str) -> tuple[tuple[str, str], ...]:
        return internal_md(app)

    def add_token(self, tenant: str, rights: tuple[str, ...] = ("read", "write")) -> str:
        """A new token in the registry the running server reads (it notices the change at the next call)."""
        from lihq.auth import TokenFile

        tf = TokenFile(Path(self.env["LIHQ_TOKENS_FILE"]))
        reg = tf.load()
        token, _ = reg.add(tenant, rights)
        tf.save(reg)
        return token


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


# tests/security imports these fixtures too: one instance per session whichever directory asks first
# (pytest keeps a separate cache per conftest directory, so the instances are shared here).
_SHARED: dict[str, object] = {}


@pytest.fixture(scope="session")
def lihq_home(tmp_path_factory) -> Path:
    if "home" not in _SHARED:
        _SHARED["home"] = tmp_path_factory.mktemp("lihq-home")
    return _SHARED["home"]


@pytest.fixture(scope="session")
def synthetic_weights(lihq_home) -> Path:
    """Seed-1 synthetic checkpoints in the official layouts, for every model a render can use, where
    `lihq serve --weights synthetic` (LIHQ_HOME=lihq_home) looks for them."""
    from lihq.weights.synth import synthesize
    from lihq_cli.weightsmode import SERVE_RECIPE

    wdir = lihq_home / "weights-synthetic" / "seed1"
    if "weights" not in _SHARED:
        for name in SERVE_RECIPE:
            synthesize(name, 1, wdir)
        _SHARED["weights"] = wdir
    return wdir


@pytest.fixture(scope="session")
def serve_stack(s3_server, synthetic_weights, lihq_home, tmp_path_factory) -> Iterator[ServeProcess]:
    """`lihq serve --weights synthetic`: the smoke-test mode a deployment is checked with."""
    if "serve" in _SHARED:  # already started for the other directory
        yield _SHARED["serve"]
        return
    grpc_port, http_port = free_port(), free_port()
    tmp = tmp_path_factory.mktemp("serve")
    env = dict(os.environ)
    env.update(
        LIHQ_S3_ENDPOINT=s3_server.endpoint,
        LIHQ_S3_ACCESS_KEY=s3_server.access_key,
        LIHQ_S3_SECRET_KEY=s3_server.secret_key,
        LIHQ_BUCKET="lihq-it",
        LIHQ_HOME=str(lihq_home),
        LIHQ_RAY_AUTH_MODE="disabled",
        LIHQ_AUTH="on",  # API tokens on RenderService, the internal credential on every stage
        LIHQ_INTERNAL_TOKEN=INTERNAL_TOKEN,
        LIHQ_TOKENS_FILE=str(lihq_home / "tokens.json"),
        LIHQ_QUOTA_UPLOAD_BYTES=str(16 << 20),  # tests/security sends one byte more
        LIHQ_WEIGHTS_DIR=str(synthetic_weights),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    log = tmp / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "lihq_cli.main",
        "serve",
        "--weights",
        "synthetic",
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
        _SHARED["serve"] = sp
        yield sp
    finally:
        _SHARED.pop("serve", None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
