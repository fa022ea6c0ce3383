"""Signed HTTP webhook on render completion (`CreateRenderRequest.webhook_url`).

When a render reaches SUCCEEDED, FAILED or CANCELLED, the orchestrator POSTs one JSON object to the
render's `webhook_url`, in the background: delivery never blocks or fails the render, and its outcome
is kept on the record (`RenderRecord.webhook`).

Request
-------
Body (compact JSON, sorted keys)::

    {"created_at": ..., "error": "", "error_stage": "", "event": "render.finished",
     "output_key": "renders/<id>/output.mp4", "render_id": ..., "state": "SUCCEEDED",
     "synthetic": false, "updated_at": ...}

Headers: `Content-Type: application/json`, `X-LIHQ-Event: render.finished`, `X-LIHQ-Delivery: <uuid>`
(the same on every retry of one delivery: receivers deduplicate on it), `X-LIHQ-Timestamp: <unix s>`
(fresh on each attempt) and `X-LIHQ-Signature: sha256=<hex>`.

Signature (the Stripe / GitHub scheme)
--------------------------------------
`hex(HMAC-SHA256(key=LIHQ_WEBHOOK_SECRET, msg=f"{timestamp}.".encode() + raw_body))`. A receiver
recomputes it over the raw body bytes, compares in constant time and rejects timestamps older than a
few minutes (replays): `verify_signature` does all three. Without a secret the header is left out
(and a warning logged once).

Retries
-------
Connection errors, timeouts, 429 and 5xx are retried up to `max_attempts` in all, waiting `backoff_s`
doubling up to `max_backoff_s`, or the response's `Retry-After` seconds (same cap). 2xx is delivered;
any other status (4xx, and 3xx: redirects are not followed, so `allow_hosts` cannot be bypassed) ends
the delivery at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

from lihq.config import WebhookConfig
from lihq.errors import InvalidInput
from lihq.log import stage_logger
from orchestrator.state import RenderRecord, RenderStore

__all__ = [
    "EVENT",
    "WebhookConfig",
    "WebhookResult",
    "WebhookSender",
    "build_body",
    "deliver",
    "sign",
    "validate_webhook_url",
    "verify_signature",
]

EVENT = "render.finished"
MAX_URL_LEN = 2048
USER_AGENT = "lihq-webhook/1"
Sleep = Callable[[float], Awaitable[object]]


# -- the URL, at CreateRender ---------------------------------------------------------------------
def validate_webhook_url(url: str, allow_hosts: tuple[str, ...] = (), resolve: Resolve | None = None) -> str:
    """Return the URL to store ("" = no webhook) or raise InvalidInput saying what to change.

    The host is resolved (`resolve`, default: the system resolver) and refused when it is internal."""
    url = url.strip()
    if not url:
        return ""
    if len(url) > MAX_URL_LEN:
        raise InvalidInput(f"webhook_url is {len(url)} characters long; the limit is {MAX_URL_LEN}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("webhook_url contains whitespace or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"webhook_url {url[:100]!r} is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(
            f"webhook_url must be an http:// or https:// URL, got scheme {parts.scheme or '(none)'!r}"
        )
    if not parts.hostname:
        raise InvalidInput(f"webhook_url {url[:100]!r} has no host; expected https://host[:port]/path")
    if parts.username is not None or parts.password is not None:  # never echo them back
        raise InvalidInput(
            "webhook_url must not carry credentials (user:password@host); "
            "verify the X-LIHQ-Signature header in the receiver instead"
        )
    allowed = {h.lower() for h in allow_hosts}
    if allowed and parts.hostname.lower() not in allowed:
        raise InvalidInput(
            f"webhook_url host {parts.hostname[:100]!r} is not allowed; allowed hosts "
            f"(LIHQ_WEBHOOK_ALLOW_HOSTS): {', '.join(sorted(allowed))}"
        )
    check_destination(
        parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80), allowed, resolve
    )
    return url


# -- where a webhook may go (SSRF) ------------------------------------------------------------------
Resolve = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def internal_reason(address: str) -> str:
    """Why `address` is off limits for a webhook ('' when it is a public unicast address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, flag):
            return name
    if not ip.is_global:
        return "non-global"
    return ""


def check_destination(
    host: str,
    port: int,
    allowed: set[str] | frozenset[str] = frozenset(),
    resolve: Resolve | None = None,
    at_delivery: bool = False,
) -> None:
    """Refuse a host that resolves to a loopback, link-local, private, multicast or otherwise internal
    address, unless LIHQ_WEBHOOK_ALLOW_HOSTS names it. Raises InvalidInput. At CreateRender a name that
    does not resolve (yet) passes; at delivery (`at_delivery`) it is refused."""
    if host.lower() in allowed:
        return
    try:
        addresses = (resolve or resolve_host)(host, port)
    except (OSError, UnicodeError) as exc:
        if not at_delivery:  # a name that does not resolve yet is checked again when the webhook is sent
            return
        raise InvalidInput(
            f"webhook_url host {host[:100]!r} does not resolve ({type(exc).__name__})"
        ) from None
    if not addresses and at_delivery:
        raise InvalidInput(f"webhook_url host {host[:100]!r} does not resolve")
    for addr in addresses:
        why = internal_reason(addr)
        if why:
            raise InvalidInput(
                f"webhook_url host {host[:100]!r} resolves to {addr}, a {why} address: webhooks may not "
                "reach internal addresses (an operator can name the host in LIHQ_WEBHOOK_ALLOW_HOSTS)"
            )


class _PublicResolver(aiohttp.abc.AbstractResolver):
    """aiohttp resolver that drops internal addresses at connect time (DNS rebinding after CreateRender)."""

    def __init__(self, allowed: set[str]) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        out = await self._inner.resolve(host, port, family)
        if host.lower() in self._allowed:
            return out
        public = [r for r in out if not internal_reason(r["host"])]
        if not public:
            raise OSError(f"{host} resolves only to internal addresses; refused")
        return public

    async def close(self) -> None:
        await self._inner.close()


# -- payload and signature ------------------------------------------------------------------------
def build_body(rec: RenderRecord) -> bytes:
    payload = {
        "event": EVENT,
        "render_id": rec.render_id,
        "state": rec.state,
        "output_key": rec.output_key,
        "error": rec.error,
        "error_stage": rec.error_stage,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "synthetic": rec.synthetic,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """The X-LIHQ-Signature value: `sha256=` + hex HMAC-SHA256 of `f"{timestamp}.{body}"`."""
    msg = f"{timestamp}.".encode() + _as_bytes(body)
    return "sha256=" + hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes | str,
    header: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """For receivers: True when `header` signs (timestamp, raw body) with `secret` and the timestamp
    is within `tolerance_s` of `now` (default: the clock). The comparison is constant-time."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, ts, body).encode(), header.strip().encode())


# -- delivery -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookResult:
    delivered: bool
    attempts: int
    status: int = 0  # the last HTTP status; 0 when no response came back
    error: str = ""
    delivery_id: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Retry-After in delta-seconds; an HTTP date or garbage falls back to our backoff."""
    raw = resp.headers.get("Retry-After", "").strip()
    return float(raw) if raw.isdigit() else None


async def deliver(rec: RenderRecord, cfg: WebhookConfig, sleep: Sleep = asyncio.sleep) -> WebhookResult:
    """POST the render's `render.finished` event to `rec.webhook_url`, retrying as the module says.

    Never raises for network or HTTP trouble: the outcome is the returned WebhookResult.
    """
    slog = stage_logger("webhook", render_id=rec.render_id)
    body, delivery_id = build_body(rec), str(uuid.uuid4())
    status, error, attempt = 0, "", 0
    timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
    allowed = {h.lower() for h in cfg.allow_hosts}
    parts = urlsplit(rec.webhook_url)
    try:  # again at delivery: the name may resolve elsewhere now (and the resolver below checks each connect)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await asyncio.to_thread(check_destination, parts.hostname or "", port, allowed, None, True)
    except (InvalidInput, ValueError) as exc:
        msg = exc.message if isinstance(exc, InvalidInput) else str(exc)
        slog.warning("webhook refused: %s", msg)
        return WebhookResult(False, 0, 0, f"refused: {msg}", delivery_id)
    connector = aiohttp.TCPConnector(resolver=_PublicResolver(allowed))
    async with aiohttp.ClientSession(
        timeout=timeout, headers={"User-Agent": USER_AGENT}, connector=connector
    ) as session:
        for attempt in range(1, cfg.max_attempts + 1):
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-LIHQ-Event": EVENT,
                "X-LIHQ-Delivery": delivery_id,
                "X-LIHQ-Timestamp": str(ts),
            }
            if cfg.secret:
                headers["X-LIHQ-Signature"] = sign(cfg.secret, ts, body)
            wait = None
            try:
                async with session.post(
                    rec.webhook_url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    status, error = resp.status, "" if resp.status < 300 else f"HTTP {resp.status}"
                    wait = _retry_after(resp)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                status, error = 0, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if 200 <= status < 300:
                slog.info(
                    "webhook delivered (attempt %d, HTTP %d, delivery %s)", attempt, status, delivery_id
                )
                return WebhookResult(True, attempt, status, "", delivery_id)
            if status and status != 429 and status < 500:
                slog.warning("webhook rejected with HTTP %d, not retried (delivery %s)", status, delivery_id)
                return WebhookResult(False, attempt, status, error, delivery_id)
            if attempt == cfg.max_attempts:
                break
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1) if wait is None else wait)
            slog.info("webhook attempt %d failed (%s); retrying in %.1f s", attempt, error, delay)
            await sleep(delay)
    slog.warning("webhook not delivered after %d attempts: %s (delivery %s)", attempt, error, delivery_id)
    return WebhookResult(False, attempt, status, error, delivery_id)


class WebhookSender:
    """Runs deliveries as background tasks of the running loop and saves each outcome on its record.

    The tasks are kept in a set (the loop holds only weak references); `aclose()` waits for them.
    """

    def __init__(self, cfg: WebhookConfig, renders: RenderStore, sleep: Sleep = asyncio.sleep) -> None:
        self.cfg, self.renders, self.sleep = cfg, renders, sleep
        self._pending: set[asyncio.Task] = set()
        self._warned_unsigned = False

    def schedule(self, rec: RenderRecord) -> asyncio.Task | None:
        """Start delivering `rec`'s webhook if it has one. Call from the event loop."""
        if not rec.webhook_url:
            return None
        if not self.cfg.secret and not self._warned_unsigned:
            self._warned_unsigned = True
            logging.getLogger("lihq.webhook").warning(
                "LIHQ_WEBHOOK_SECRET is not set: webhooks are sent without X-LIHQ-Signature"
            )
        task = asyncio.create_task(self._deliver_and_record(rec))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _deliver_and_record(self, rec: RenderRecord) -> None:
        slog = stage_logger("webhook", render_id=rec.render_id)
        try:
            result = await deliver(rec, self.cfg, self.sleep)
            fresh = self.renders.load(rec.render_id)
            fresh.webhook = result.as_dict()
            self.renders.save(fresh)
        except Exception:  # noqa: BLE001 - a webhook must never take the orchestrator down
            slog.exception("webhook outcome could not be recorded")

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Wait up to `timeout_s` for deliveries in flight, then cancel what is left."""
        if not self._pending:
            return
        _, left = await asyncio.wait(set(self._pending), timeout=timeout_s)
        for task in left:
            task.cancel()
        if left:
            logging.getLogger("lihq.webhook").warning("%d webhook deliveries cancelled at close", len(left))
            await asyncio.gather(*left, return_exceptions=True)
