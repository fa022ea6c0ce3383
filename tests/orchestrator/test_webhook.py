"""Render-finished webhooks against a real local HTTP receiver: payload, signature, retries, URL checks."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lihq.errors import InvalidInput
from lihq.storage import FileStore
from orchestrator.state import CANCELLED, FAILED, SUCCEEDED, RenderRecord, RenderStore
from orchestrator.webhook import WebhookConfig, deliver, validate_webhook_url, verify_signature
from tests.orchestrator.test_core import SPEC, FakeStages, make

SECRET = "s3cret"
LOCAL = ("127.0.0.1",)  # the test receiver is on loopback, which webhooks reach only when allowed by name
CFG = WebhookConfig(secret=SECRET, timeout_s=5, max_attempts=5, backoff_s=0.0, allow_hosts=LOCAL)


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records each POST and answers from `script` (then 200)."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                rx.hits.append(Hit(self.path, dict(self.headers.items()), body))
                status, headers = rx.script.pop(0) if rx.script else (200, {})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lihq"
    try:
        yield rx
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(tmp_path, url: str, stages: FakeStages | None = None, cfg: WebhookConfig = CFG):
    """Create one render with `url`, let it finish, wait for the webhook; return the stored record."""

    async def go() -> RenderRecord:
        orch = make(tmp_path, stages or FakeStages(), webhooks=cfg)
        [rec] = await orch.create([SPEC], webhook_url=url)
        await orch.wait(rec.render_id)
        await orch.aclose(timeout_s=30)
        return orch.get(rec.render_id)

    return asyncio.run(go())


def test_succeeded_render_posts_one_signed_event(tmp_path, receiver):
    rec = render(tmp_path, receiver.url)
    assert rec.state == SUCCEEDED
    [hit] = receiver.hits
    body = json.loads(hit.body)
    assert hit.path == "/hooks/lihq" and hit.headers["Content-Type"] == "application/json"
    assert body == {
        "event": "render.finished",
        "render_id": rec.render_id,
        "state": "SUCCEEDED",
        "output_key": "renders/x/output.mp4",
        "error": "",
        "error_stage": "",
        "created_at": rec.created_at,
        "updated_at": body["updated_at"],
        "synthetic": False,
    }
    assert hit.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()  # compact, sorted
    assert hit.headers["X-LIHQ-Event"] == "render.finished" and len(hit.headers["X-LIHQ-Delivery"]) == 36
    ts, sig = hit.headers["X-LIHQ-Timestamp"], hit.headers["X-LIHQ-Signature"]
    assert abs(int(ts) - time.time()) < 60 and sig.startswith("sha256=")
    assert verify_signature(SECRET, ts, hit.body, sig)
    assert not verify_signature(SECRET, ts, hit.body.replace(b"SUCCEEDED", b"FAILED"), sig)  # tampered
    assert not verify_signature("other", ts, hit.body, sig)  # wrong secret
    assert not verify_signature(SECRET, str(int(ts) + 1), hit.body, sig)  # timestamp is signed too
    assert not verify_signature(SECRET, ts, hit.body, sig, now=int(ts) + 301)  # stale: a replay
    assert verify_signature(SECRET, ts, hit.body, sig, now=int(ts) + 299)
    assert rec.webhook["delivered"] is True and rec.webhook["attempts"] == 1 and rec.webhook["status"] == 200
    assert rec.webhook["delivery_id"] == hit.headers["X-LIHQ-Delivery"]


def test_failed_render_names_the_error_and_stage(tmp_path, receiver):
    rec = render(tmp_path, receiver.url, FakeStages(fail_on="wav2lip/1"))
    [hit] = receiver.hits
    body = json.loads(hit.body)
    assert rec.state == FAILED and body["state"] == "FAILED" and body["output_key"] == ""
    assert body["error_stage"] == "wav2lip" and "wav2lip/1" in body["error"] and body["error"] == rec.error


def test_5xx_is_retried_with_backoff_and_one_delivery_id(receiver):
    receiver.script = [(503, {}), (500, {})]
    slept: list[float] = []

    async def no_sleep(s: float) -> None:
        slept.append(s)

    rec = RenderRecord("r1", SPEC, state=SUCCEEDED, webhook_url=receiver.url)
    cfg = WebhookConfig(secret=SECRET, backoff_s=1.0, allow_hosts=LOCAL)
    res = asyncio.run(deliver(rec, cfg, sleep=no_sleep))
    assert res.delivered and res.attempts == 3 and res.status == 200 and len(receiver.hits) == 3
    assert slept == [1.0, 2.0]  # doubling
    assert (
        len({h.headers["X-LIHQ-Delivery"] for h in receiver.hits})
        == 1
        == len({h.body for h in receiver.hits})
    )
    for h in receiver.hits:  # each attempt is signed on its own timestamp
        assert verify_signature(SECRET, h.headers["X-LIHQ-Timestamp"], h.body, h.headers["X-LIHQ-Signature"])


def test_429_honours_retry_after_capped(receiver):
    receiver.script = [(429, {"Retry-After": "7"}), (503, {"Retry-After": "3600"}), (429, {})]
    slept: list[float] = []

    async def no_sleep(s: float) -> None:
        slept.append(s)

    rec = RenderRecord("r1", SPEC, state=SUCCEEDED, webhook_url=receiver.url)
    res = asyncio.run(
        deliver(rec, WebhookConfig(secret=SECRET, backoff_s=1.0, allow_hosts=LOCAL), sleep=no_sleep)
    )
    assert res.delivered and res.attempts == 4 and slept == [7.0, 30.0, 4.0]


def test_4xx_is_not_retried_and_recorded_as_not_delivered(tmp_path, receiver):
    receiver.script = [(400, {})]
    rec = render(tmp_path, receiver.url)
    assert rec.state == SUCCEEDED and len(receiver.hits) == 1
    assert rec.webhook["delivered"] is False and rec.webhook["attempts"] == 1
    assert rec.webhook["status"] == 400 and rec.webhook["error"] == "HTTP 400"


def test_unreachable_receiver_gives_up_and_the_render_still_succeeds(tmp_path):
    cfg = WebhookConfig(secret=SECRET, timeout_s=2, max_attempts=3, backoff_s=0.0, allow_hosts=LOCAL)
    rec = render(tmp_path, f"http://127.0.0.1:{free_port()}/hook", cfg=cfg)
    assert rec.state == SUCCEEDED and rec.output_key == "renders/x/output.mp4"
    assert rec.webhook["delivered"] is False and rec.webhook["attempts"] == 3
    assert rec.webhook["status"] == 0 and rec.webhook["error"]


def test_cancelling_a_queued_render_posts_cancelled(tmp_path, receiver):
    async def go() -> RenderRecord:
        orch = make(tmp_path, FakeStages(), webhooks=CFG)
        orch.renders.save(RenderRecord("0123456789abcdef", SPEC, webhook_url=receiver.url))  # not running
        await orch.cancel("0123456789abcdef")
        await orch.aclose()
        return orch.get("0123456789abcdef")

    rec = asyncio.run(go())
    [hit] = receiver.hits
    assert (
        rec.state == CANCELLED and json.loads(hit.body)["state"] == "CANCELLED" and rec.webhook["delivered"]
    )


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://hooks.example/x", "http:// or https://"),
        ("hooks.example/x", "http:// or https://"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pw@hooks.example/x", "credentials"),
        ("https://evil.example/x", "not allowed"),
        ("https://hooks.example:99999/x", "not a valid URL"),
        ("https://hooks.example/a b", "whitespace"),
        ("https://hooks.example/" + "a" * 2048, "limit is 2048"),
    ],
)
def test_bad_webhook_url_is_invalid_at_create_and_nothing_is_persisted(tmp_path, url, match):
    stages = FakeStages()
    cfg = WebhookConfig(secret=SECRET, allow_hosts=("hooks.example",))

    async def go():
        orch = make(tmp_path, stages, webhooks=cfg)
        with pytest.raises(InvalidInput, match=match) as ei:
            await orch.create([SPEC], idempotency_key="k", webhook_url=url)
        return orch, ei.value

    orch, err = asyncio.run(go())
    assert orch.list() == [] and not stages.calls  # rejected before any stage ran or anything was saved
    assert orch.renders.lookup_idempotent("k") is None
    assert "pw" not in err.message
    assert validate_webhook_url("https://HOOKS.example:8443/x?a=1", cfg.allow_hosts)  # allowed host passes


def test_no_webhook_url_sends_nothing(tmp_path, receiver):
    rec = render(tmp_path, "")
    assert rec.state == SUCCEEDED and receiver.hits == [] and rec.webhook == {}


def test_without_a_secret_posts_unsigned_and_warns_once(tmp_path, receiver):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("lihq.webhook")
    logger.addHandler(handler)

    async def go() -> None:
        orch = make(tmp_path, FakeStages(), webhooks=WebhookConfig(backoff_s=0.0, allow_hosts=LOCAL))
        for rec in await orch.create([SPEC, SPEC], webhook_url=receiver.url):
            await orch.wait(rec.render_id)
        await orch.aclose()

    try:
        asyncio.run(go())
    finally:
        logger.removeHandler(handler)
    assert len(receiver.hits) == 2 and all("X-LIHQ-Signature" not in h.headers for h in receiver.hits)
    assert sum("LIHQ_WEBHOOK_SECRET" in r.getMessage() for r in records) == 1


def test_config_from_env():
    cfg = WebhookConfig.from_env(
        {
            "LIHQ_WEBHOOK_SECRET": "topsecret-xyz",
            "LIHQ_WEBHOOK_TIMEOUT_S": "2.5",
            "LIHQ_WEBHOOK_MAX_ATTEMPTS": "3",
            "LIHQ_WEBHOOK_ALLOW_HOSTS": " Hooks.Example , b.example,",
        }
    )
    assert (cfg.secret, cfg.timeout_s, cfg.max_attempts) == ("topsecret-xyz", 2.5, 3)
    assert cfg.allow_hosts == ("hooks.example", "b.example") and "topsecret" not in repr(cfg)
    assert WebhookConfig.from_env({}) == WebhookConfig()
    with pytest.raises(InvalidInput, match="LIHQ_WEBHOOK_MAX_ATTEMPTS"):
        WebhookConfig.from_env({"LIHQ_WEBHOOK_MAX_ATTEMPTS": "many"})
    with pytest.raises(InvalidInput, match="max_attempts"):
        WebhookConfig.from_env({"LIHQ_WEBHOOK_MAX_ATTEMPTS": "0"})


def test_records_written_before_webhooks_still_load(tmp_path):
    store = RenderStore(FileStore(tmp_path / "store", "lihq"))
    old = json.loads(RenderRecord("0123456789abcdef", SPEC).to_json())
    del old["webhook"]
    store.store.put_bytes(store.key("0123456789abcdef"), json.dumps(old).encode(), "application/json")
    assert store.load("0123456789abcdef").webhook == {}


# -- SSRF: webhooks never reach internal addresses unless named in LIHQ_WEBHOOK_ALLOW_HOSTS ---------
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://127.0.0.1:9000/", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.5/", "private"),
        ("http://172.16.0.9/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
    ],
)
def test_internal_webhook_addresses_are_refused_at_create(url, why):
    with pytest.raises(InvalidInput, match=why):
        validate_webhook_url(url)


def test_a_name_resolving_to_an_internal_address_is_refused_unless_allowed():
    def resolver(host, port):
        return {"hooks.internal": ["10.1.2.3"], "hooks.public": ["93.184.216.34"]}[host]

    with pytest.raises(InvalidInput, match="resolves to 10.1.2.3, a private address"):
        validate_webhook_url("https://hooks.internal/x", (), resolver)
    assert validate_webhook_url("https://hooks.public/x", (), resolver)
    assert validate_webhook_url("https://hooks.internal/x", ("hooks.internal", "hooks.public"), resolver)

    def broken(host, port):
        raise OSError("no such host")

    # a name that does not resolve yet is accepted at creation and checked again at delivery
    assert validate_webhook_url("https://nowhere.invalid/x", (), broken)


def test_delivery_checks_the_address_again_and_refuses_without_connecting(tmp_path, receiver):
    """A record whose URL became internal (or was stored before the check) is refused at delivery."""
    rec = RenderRecord("r1", SPEC, state=SUCCEEDED, webhook_url=receiver.url)
    res = asyncio.run(deliver(rec, WebhookConfig(secret=SECRET, backoff_s=0.0)))
    assert not res.delivered and res.attempts == 0 and "loopback" in res.error
    assert receiver.hits == []
