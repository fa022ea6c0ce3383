"""All environment reading happens here (STYLE: `os.environ` is read in one config module).

Each layer gets its own frozen dataclass; `from_env()` builds it from `LIHQ_*` variables so tests and
services can also construct configs explicitly.

Variables
---------
LIHQ_HOME            root of local state (default: the user cache dir, e.g. ~/.cache/lihq)
LIHQ_STORE_DIR       filesystem object store root (default: $LIHQ_HOME/store)
LIHQ_BUCKET          bucket name for both stores (default: lihq)
LIHQ_STORE_PREFIX    optional key prefix every object lives under (multi-tenant buckets)
LIHQ_S3_ENDPOINT     host:port or URL of an S3 server; when set, the S3 store is used
LIHQ_S3_ACCESS_KEY / LIHQ_S3_SECRET_KEY / LIHQ_S3_REGION / LIHQ_S3_SECURE (1/0; default from URL scheme)
LIHQ_S3_RETRIES      bounded retries before a storage call is reported UNAVAILABLE (default 3)
LIHQ_WEIGHTS_DIR     where checkpoints live (default: $LIHQ_HOME/weights)
LIHQ_WEBHOOK_SECRET / LIHQ_WEBHOOK_TIMEOUT_S / LIHQ_WEBHOOK_MAX_ATTEMPTS / LIHQ_WEBHOOK_ALLOW_HOSTS
                     render-finished webhooks (WebhookConfig; orchestrator/webhook.py)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import platformdirs

from lihq.errors import InvalidInput

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _flag(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InvalidInput(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no")


def lihq_home(env: Mapping[str, str] | None = None) -> Path:
    e = _env(env)
    return Path(e.get("LIHQ_HOME") or platformdirs.user_cache_dir("lihq"))


@dataclass(frozen=True)
class S3Config:
    """Connection settings for any S3-compatible server, used through the `minio` client."""

    endpoint: str  # host[:port], no scheme
    access_key: str
    secret_key: str
    secure: bool = False
    region: str | None = None
    retries: int = 3

    @staticmethod
    def parse_endpoint(raw: str, secure: bool | None = None) -> tuple[str, bool]:
        """Accept `host:port`, `http://host:port` or `https://host`; return (host[:port], secure)."""
        if "://" in raw:
            u = urlparse(raw)
            if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/"):
                raise InvalidInput(f"S3 endpoint {raw!r}: expected http(s)://host[:port] with no path")
            return u.netloc, (u.scheme == "https") if secure is None else secure
        if "/" in raw or not raw:
            raise InvalidInput(f"S3 endpoint {raw!r}: expected host[:port]")
        return raw, bool(secure)


@dataclass(frozen=True)
class StoreConfig:
    """Which object store to use. `s3 is None` means the filesystem store under `root`."""

    bucket: str = "lihq"
    prefix: str = ""
    root: Path = field(default_factory=lambda: lihq_home() / "store")
    s3: S3Config | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreConfig:
        e = _env(env)
        bucket = e.get("LIHQ_BUCKET", "lihq")
        prefix = e.get("LIHQ_STORE_PREFIX", "").strip("/")
        root = Path(e.get("LIHQ_STORE_DIR") or lihq_home(e) / "store")
        s3 = None
        endpoint = e.get("LIHQ_S3_ENDPOINT", "").strip()
        if endpoint:
            secure_raw = e.get("LIHQ_S3_SECURE")
            secure = None if secure_raw is None else _flag(secure_raw, "LIHQ_S3_SECURE")
            host, secure = S3Config.parse_endpoint(endpoint, secure)
            access = e.get("LIHQ_S3_ACCESS_KEY", "")
            secret = e.get("LIHQ_S3_SECRET_KEY", "")
            if not access or not secret:
                raise InvalidInput(
                    "LIHQ_S3_ENDPOINT is set but LIHQ_S3_ACCESS_KEY / LIHQ_S3_SECRET_KEY are not"
                )
            try:
                retries = int(e.get("LIHQ_S3_RETRIES", "3"))
            except ValueError as exc:
                raise InvalidInput(f"LIHQ_S3_RETRIES must be an integer: {exc}") from exc
            s3 = S3Config(host, access, secret, secure, e.get("LIHQ_S3_REGION") or None, retries)
        return cls(bucket=bucket, prefix=prefix, root=root, s3=s3)


@dataclass(frozen=True)
class WeightsConfig:
    dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WeightsConfig:
        e = _env(env)
        return cls(dir=Path(e.get("LIHQ_WEIGHTS_DIR") or lihq_home(e) / "weights"))


@dataclass(frozen=True)
class RayConfig:
    """How `lihq serve` starts (or joins) Ray.

    LIHQ_RAY_ADDRESS     join an existing cluster ("auto" or host:port); empty starts a local Ray
    LIHQ_RAY_AUTH_MODE   Ray token auth for a local Ray: "token" or "disabled" (default "disabled":
                         the embedded instance is this user's, bound to this machine; clusters set
                         RAY_AUTH_MODE=token in their manifests). Always set explicitly, never left
                         to Ray's changing default.
    LIHQ_LOGICAL_GPUS    GPUs to declare to a local Ray when CUDA is absent (default 1), so stage
                         deployments that ask for a GPU fraction are schedulable and run on CPU.
    LIHQ_NUM_CPUS        CPUs to declare to a local Ray (default: Ray's detection)
    """

    address: str = ""
    auth_mode: str = "disabled"
    logical_gpus: float = 1.0
    num_cpus: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RayConfig:
        e = _env(env)
        mode = e.get("LIHQ_RAY_AUTH_MODE", "disabled").strip().lower()
        if mode not in ("token", "disabled"):
            raise InvalidInput(f"LIHQ_RAY_AUTH_MODE={mode!r}: expected 'token' or 'disabled'")
        try:
            gpus = float(e.get("LIHQ_LOGICAL_GPUS", "1"))
            cpus = int(e["LIHQ_NUM_CPUS"]) if e.get("LIHQ_NUM_CPUS") else None
        except ValueError as exc:
            raise InvalidInput(f"LIHQ_LOGICAL_GPUS / LIHQ_NUM_CPUS: {exc}") from exc
        return cls(address=e.get("LIHQ_RAY_ADDRESS", ""), auth_mode=mode, logical_gpus=gpus, num_cpus=cpus)

    def apply_auth_env(self) -> None:
        """Ray reads its auth mode from the process environment only."""
        os.environ["RAY_AUTH_MODE"] = self.auth_mode


@dataclass(frozen=True)
class WebhookConfig:
    """How the orchestrator POSTs `render.finished` webhooks (orchestrator/webhook.py).

    LIHQ_WEBHOOK_SECRET        HMAC-SHA256 key of the X-LIHQ-Signature header (empty: sent unsigned)
    LIHQ_WEBHOOK_TIMEOUT_S     per-attempt timeout (default 10)
    LIHQ_WEBHOOK_MAX_ATTEMPTS  attempts per delivery, the first included (default 5)
    LIHQ_WEBHOOK_ALLOW_HOSTS   comma-separated host names a webhook_url may name (empty: any host)

    Retries wait `backoff_s`, doubling each time, at most `max_backoff_s` (a Retry-After too).
    """

    secret: str = field(default="", repr=False)  # never in logs
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise InvalidInput(
                f"webhook config: timeout_s={self.timeout_s} must be > 0, max_attempts="
                f"{self.max_attempts} >= 1, backoff_s={self.backoff_s} and max_backoff_s >= 0"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookConfig:
        e = _env(env)
        try:
            timeout_s = float(e.get("LIHQ_WEBHOOK_TIMEOUT_S") or 10.0)
            attempts = int(e.get("LIHQ_WEBHOOK_MAX_ATTEMPTS") or 5)
        except ValueError as exc:
            raise InvalidInput(f"LIHQ_WEBHOOK_TIMEOUT_S / LIHQ_WEBHOOK_MAX_ATTEMPTS: {exc}") from exc
        hosts = tuple(
            h.strip().lower() for h in e.get("LIHQ_WEBHOOK_ALLOW_HOSTS", "").split(",") if h.strip()
        )
        return cls(
            secret=e.get("LIHQ_WEBHOOK_SECRET", ""),
            timeout_s=timeout_s,
            max_attempts=attempts,
            allow_hosts=hosts,
        )


SYNTHETIC_WEIGHTS_ENV = "LIHQ_SYNTHETIC_WEIGHTS"


def synthetic_weights_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when LIHQ_SYNTHETIC_WEIGHTS is set (by `lihq serve/render --weights synthetic`): the
    orchestrator then gives Wav2Lip the aligned crop's known face box (synthetic S3FD finds none)."""
    return _env(env).get(SYNTHETIC_WEIGHTS_ENV, "").strip().lower() in ("1", "true", "yes")
