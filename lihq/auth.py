"""API tokens and tenants for RenderService (`authorization: Bearer <token>`).

A token is a high-entropy random string (`lihq_` + 43 url-safe characters, 256 bits). The registry keeps
only its sha256, with the tenant it belongs to and its rights, in one JSON file:

    LIHQ_TOKENS_FILE   the registry (default: $LIHQ_HOME/tokens.json, mode 0600); `lihq tokens add --file`
                       writes one.
    LIHQ_TOKENS_JSON   the registry's content itself, when set (Kubernetes: key tokens.json of the Secret
                       lihq-auth, k8s/README.md).
    LIHQ_AUTH          "off" turns authentication off (what `lihq serve --insecure-no-auth` sets); every
                       caller is then the admin of tenant "default". Anything else: on.
    LIHQ_QUOTA_RUNNING            renders a tenant may have QUEUED or RUNNING at once (default 16)
    LIHQ_QUOTA_RENDERS_PER_REQUEST renders in one CreateRender (default 16)
    LIHQ_QUOTA_UPLOAD_BYTES       bytes of one upload (default LIHQ_MAX_UPLOAD_BYTES, else 2 GiB)

Rights: `read` (GetRender, ListRenders, WatchRender), `write` (CreateRender, CancelRender, UploadInput),
`admin` (sees every tenant's renders and may reference any key in the store: the operator). The server
re-reads the file when it changes, so `lihq tokens revoke` takes effect at the next call (LIHQ_TOKENS_JSON:
at the next restart).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lihq.errors import InvalidInput, PermissionDenied, ResourceExhausted, Unauthenticated

RIGHTS = ("read", "write", "admin")
DEFAULT_RIGHTS = ("read", "write")
ADMIN_TENANT = "admin"
INSECURE_TENANT = "default"
TOKEN_PREFIX = "lihq_"
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,128}$")
API_TOKEN_FILE = "api-token"  # $LIHQ_HOME/api-token: the admin token `lihq serve` made, read by the CLI


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def tokens_file(env: Mapping[str, str] | None = None) -> Path:
    from lihq.config import lihq_home

    e = _env(env)
    return Path(e.get("LIHQ_TOKENS_FILE") or lihq_home(e) / "tokens.json")


def api_token_file(env: Mapping[str, str] | None = None) -> Path:
    from lihq.config import lihq_home

    return lihq_home(env) / API_TOKEN_FILE


def auth_enabled(env: Mapping[str, str] | None = None) -> bool:
    return _env(env).get("LIHQ_AUTH", "").strip().lower() not in ("off", "0", "false", "no")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_tenant(name: str) -> str:
    if not TENANT_RE.match(name or ""):
        raise InvalidInput(
            f"tenant {name[:40]!r}: use 1-40 lower-case letters, digits and '-', starting with a letter or digit"
        )
    return name


def check_rights(rights: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    bad = [r for r in rights if r not in RIGHTS]
    if bad or not rights:
        raise InvalidInput(f"rights {list(rights)}: choose from {', '.join(RIGHTS)}")
    return tuple(r for r in RIGHTS if r in rights)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant its token belongs to and what the token may do."""

    tenant: str
    rights: tuple[str, ...]
    token_id: str = ""

    @property
    def admin(self) -> bool:
        return "admin" in self.rights

    def require(self, right: str, what: str) -> None:
        if right not in self.rights and not self.admin:
            raise PermissionDenied(f"this token may not {what} (it lacks the {right!r} right)")


@dataclass
class TokenEntry:
    id: str
    tenant: str
    rights: list[str]
    sha256: str
    created_at: str = ""
    revoked_at: str = ""
    note: str = ""


@dataclass
class Registry:
    """The tokens file: entries by id. Plain data; `TokenFile` reads and writes it."""

    tokens: list[TokenEntry] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes, where: str) -> Registry:
        try:
            raw = json.loads(data or b"{}")
            tokens = [TokenEntry(**t) for t in raw.get("tokens", [])]
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"tokens file {where} is not a LIHQ token registry: {exc}") from exc
        return cls(tokens)

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, "tokens": [asdict(t) for t in self.tokens]}, indent=1).encode()

    def add(
        self, tenant: str, rights: tuple[str, ...] = DEFAULT_RIGHTS, note: str = ""
    ) -> tuple[str, TokenEntry]:
        token = new_token()
        entry = TokenEntry(
            id="tk_" + secrets.token_hex(4),
            tenant=check_tenant(tenant),
            rights=list(check_rights(rights)),
            sha256=hash_token(token),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            note=note[:200],
        )
        self.tokens.append(entry)
        return token, entry

    def revoke(self, ident: str) -> list[TokenEntry]:
        """Revoke by token id, or every token of a tenant. Returns what was revoked."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        hit = [t for t in self.tokens if (t.id == ident or t.tenant == ident) and not t.revoked_at]
        if not hit and not any(t.id == ident or t.tenant == ident for t in self.tokens):
            raise InvalidInput(f"no token or tenant {ident[:60]!r} (see `lihq tokens list`)")
        for t in hit:
            t.revoked_at = now
        return hit

    def by_hash(self) -> dict[str, TokenEntry]:
        return {t.sha256: t for t in self.tokens if not t.revoked_at}


class TokenFile:
    """Reads the registry file, re-reading it whenever its mtime or size changes (cheap stat per call)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._sig: tuple[int, int] | None = None
        self._index: dict[str, TokenEntry] = {}

    def load(self) -> Registry:
        try:
            return Registry.parse(self.path.read_bytes(), str(self.path))
        except FileNotFoundError:
            return Registry()

    def save(self, reg: Registry) -> None:
        """Atomic write with mode 0600 (the file holds hashes only, but names every tenant)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(reg.to_json())
        os.replace(tmp, self.path)

    def index(self) -> dict[str, TokenEntry]:
        try:
            st = self.path.stat()
            sig = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            sig = None
        with self._lock:
            if sig != self._sig or sig is None:
                self._index = self.load().by_hash() if sig is not None else {}
                self._sig = sig
            return self._index


def bearer_token(metadata: Mapping[str, str]) -> str:
    raw = metadata.get("authorization", "")
    scheme, _, token = raw.strip().partition(" ")
    if not raw:
        raise Unauthenticated("missing credentials: send metadata 'authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed authorization metadata: expected 'Bearer <token>'")
    return token.strip()


class EnvTokens:
    """The registry as JSON in LIHQ_TOKENS_JSON (Kubernetes: a Secret key as an env var; a change needs a
    pod restart, as env vars do)."""

    def __init__(self, text: str) -> None:
        self._index = Registry.parse(text.encode(), "LIHQ_TOKENS_JSON").by_hash()

    def index(self) -> dict[str, TokenEntry]:
        return self._index


def default_tokens(env: Mapping[str, str] | None = None) -> TokenFile | EnvTokens:
    e = _env(env)
    if e.get("LIHQ_TOKENS_JSON", "").strip():
        return EnvTokens(e["LIHQ_TOKENS_JSON"])
    return TokenFile(tokens_file(e))


class Authenticator:
    """metadata -> Principal, or Unauthenticated. One per RenderService replica."""

    def __init__(self, tokens: TokenFile | EnvTokens | None = None, enabled: bool | None = None) -> None:
        self.enabled = auth_enabled() if enabled is None else enabled
        self.tokens = tokens or default_tokens()

    def authenticate(self, metadata: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return Principal(INSECURE_TENANT, RIGHTS)
        token = bearer_token(metadata)
        entry = None
        if _TOKEN_RE.match(token):
            entry = self.tokens.index().get(hash_token(token))
        if entry is None:  # unknown, revoked and malformed tokens look the same to the caller
            raise Unauthenticated("invalid or revoked token")
        return Principal(entry.tenant, tuple(entry.rights), entry.id)


@dataclass(frozen=True)
class Quotas:
    running: int = 16
    renders_per_request: int = 16
    upload_bytes: int = 2 * 1024**3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Quotas:
        e = _env(env)

        def num(name: str, default: int) -> int:
            raw = e.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) <= 0:
                raise InvalidInput(f"{name}={raw[:40]!r}: expected a positive whole number")
            return int(raw)

        upload_default = num("LIHQ_MAX_UPLOAD_BYTES", cls.upload_bytes)
        return cls(
            running=num("LIHQ_QUOTA_RUNNING", cls.running),
            renders_per_request=num("LIHQ_QUOTA_RENDERS_PER_REQUEST", cls.renders_per_request),
            upload_bytes=num("LIHQ_QUOTA_UPLOAD_BYTES", upload_default),
        )

    def check_request(self, n: int) -> None:
        if n > self.renders_per_request:
            raise ResourceExhausted(
                f"{n} renders in one request; this tenant may send at most {self.renders_per_request} "
                "(LIHQ_QUOTA_RENDERS_PER_REQUEST)"
            )

    def check_running(self, running: int, adding: int) -> None:
        if running + adding > self.running:
            raise ResourceExhausted(
                f"this tenant has {running} renders queued or running and asked for {adding} more; "
                f"the limit is {self.running} at once (LIHQ_QUOTA_RUNNING): wait for some to finish"
            )


def ensure_admin_token(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """`lihq serve` on first start: an admin token in the registry, its plain text in $LIHQ_HOME/api-token
    (0600). Returns (that path, whether it was created now). An existing api-token whose hash is still
    registered is kept."""
    path = api_token_file(env)
    tf = TokenFile(tokens_file(env))
    if path.is_file():
        token = path.read_text().strip()
        if hash_token(token) in tf.load().by_hash():
            return path, False
    reg = tf.load()
    token, _ = reg.add(ADMIN_TENANT, RIGHTS, note="created by lihq serve")
    tf.save(reg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path, True


def client_token(explicit: str = "", env: Mapping[str, str] | None = None) -> str:
    """The token a CLI client sends: --token, else LIHQ_API_TOKEN, else $LIHQ_HOME/api-token ('' if none)."""
    e = _env(env)
    if explicit:
        return explicit.strip()
    if e.get("LIHQ_API_TOKEN"):
        return e["LIHQ_API_TOKEN"].strip()
    path = api_token_file(e)
    try:
        return path.read_text().strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return ""


def prepare_serve(insecure: bool, env: dict[str, str] | None = None) -> list[str]:
    """`lihq serve` before Ray starts: settle authentication in this process's environment (the local
    replicas inherit it) and return the lines to tell the operator. Raises InvalidInput to refuse."""
    e = os.environ if env is None else env
    if insecure or not auth_enabled(e):
        e["LIHQ_AUTH"] = "off"
        return [
            "WARNING: authentication is OFF (--insecure-no-auth / LIHQ_AUTH=off): anyone who reaches the "
            "gRPC port can call every RenderService and stage RPC"
        ]
    e["LIHQ_AUTH"] = "on"
    path = tokens_file(e)
    e["LIHQ_TOKENS_FILE"] = str(path.resolve())
    if path.exists() and not os.access(path, os.W_OK):  # a mounted Secret: use it as it is
        if not TokenFile(path).load().by_hash():
            raise InvalidInput(
                f"the token registry {path} has no active token; add one (lihq tokens add) or start with "
                "--insecure-no-auth"
            )
        return [f"authentication on: tokens from {path}"]
    token_path, created = ensure_admin_token(e)
    if created:
        return [
            f"authentication on: created an admin token, saved to {token_path} (mode 0600); the lihq CLI "
            "reads it from there. More tokens: lihq tokens add TENANT"
        ]
    return [f"authentication on: tokens from {path}; admin token in {token_path}"]
