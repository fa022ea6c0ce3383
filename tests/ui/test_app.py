"""The `lihq ui` server (lihq_cli/ui/app.py) over HTTP, in front of a real RenderService gRPC server with
tokens (fake stages): the form offers every RenderSpec knob, uploads/creates/lists/cancels go through
lihq.client, WatchRender arrives as server-sent events, render files stream with Range support,
server messages are mapped to the form field they name, and the token never reaches the browser."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from lihq.auth import Authenticator, EnvTokens, Registry
from lihq.client import Client
from lihq.storage import FileStore
from lihq.v1 import render_pb2
from lihq_cli.ui.app import fields_of, knobs, parse_range
from orchestrator.core import Orchestrator
from orchestrator.scheduler import Limits, RetryPolicy
from orchestrator.servicer import RenderServicer
from tests.orchestrator.test_core import FakeStages
from tests.plaingrpc import plain_server
from tests.ui.uiserver import ui_server

VIDEO = bytes(range(256)) * 3000


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("ui") / "store", "lihq")
    reg = Registry()
    token = reg.add("alice")[0]
    other = reg.add("bob")[0]
    auth = Authenticator(EnvTokens(reg.to_json().decode()), enabled=True)
    orch = Orchestrator(
        store, FakeStages(), Limits(default_concurrency=4), RetryPolicy(attempts=2, base_s=0.001)
    )
    services = [render_pb2.DESCRIPTOR.services_by_name["RenderService"]]
    with plain_server(RenderServicer(orch, auth), services) as ch, Client(ch.lihq_address, token=token) as c:
        with ui_server(c) as url:
            yield {"url": url, "store": store, "token": token, "bob": Client(ch.lihq_address, token=other)}


def call(page, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(page["url"] + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


PAGE = {"X-LIHQ-UI": "1"}  # what the page's own JS sends on every state-changing call


def post_json(page, path: str, obj) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **PAGE}
    status, _, body = call(page, "POST", path, json.dumps(obj).encode(), headers)
    return status, json.loads(body)


def upload(page, name: str, data: bytes, field: str) -> dict:
    status, _, body = call(page, "PUT", f"/api/uploads?filename={name}&field={field}", data, PAGE)
    assert status == 200, body
    return json.loads(body)


def test_the_page_and_its_assets_carry_no_token(page):
    for path in ("/", "/static/app.js", "/static/style.css", "/api/knobs"):
        status, _, body = call(page, "GET", path)
        assert status == 200 and page["token"].encode() not in body
    status, headers, body = call(page, "GET", "/static/vendor/hls.js/hls.light.min.js")
    assert status == 200 and len(body) > 100_000
    assert call(page, "GET", "/static/vendor/hls.js/LICENSE")[0] == 200


def test_the_form_offers_every_render_spec_knob():
    names = {k["name"] for k in knobs()}
    for field in render_pb2.RenderSpec.DESCRIPTOR.fields:
        if field.name in ("face_video", "audio", "text"):
            continue
        covered = "pads" if field.name.startswith("pad_") else field.name
        assert covered in names, field.name
    assert all(k["help"] for k in knobs())
    assert {"keep_lips", "motion", "reference_offset_random", "segment_frames"} <= names


def test_upload_create_watch_files_and_list(page):
    face = upload(page, "face.png", b"face stand-in", "face")
    audio = upload(page, "speech.wav", b"speech stand-in", "audio")
    assert face["key"].startswith("tenants/alice/inputs/")
    status, body = post_json(page, "/api/renders", {"spec": {"face": face, "audio": audio, "passes": 1}})
    assert status == 200, body
    rid = body["renders"][0]["render_id"]
    status, headers, stream = call(page, "GET", f"/api/renders/{rid}/events")
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(b.split(b"data: ", 1)[1]) for b in stream.split(b"\n\n") if b.startswith(b"event: render")
    ]
    assert events[-1]["state"] == "SUCCEEDED" and stream.rstrip().endswith(b"event: end\ndata: {}")
    assert any(p["stage"] == "wav2lip" for p in events[-1]["progress"])

    page["store"].put_bytes(f"renders/{rid}/output.mp4", VIDEO)
    page["store"].put_bytes(f"renders/{rid}/hls/index.m3u8", b"#EXTM3U\n")
    status, headers, data = call(page, "GET", f"/api/renders/{rid}/files/output.mp4?download=1")
    assert status == 200 and data == VIDEO and headers["content-type"] == "video/mp4"
    assert "attachment" in headers["content-disposition"]
    status, headers, data = call(
        page, "GET", f"/api/renders/{rid}/files/output.mp4", headers={"Range": "bytes=100-199"}
    )
    assert (
        status == 206 and data == VIDEO[100:200] and headers["content-range"] == f"bytes 100-199/{len(VIDEO)}"
    )
    status, headers, data = call(page, "GET", f"/api/renders/{rid}/files/hls/index.m3u8")
    assert (
        status == 200 and data == b"#EXTM3U\n" and headers["content-type"] == "application/vnd.apple.mpegurl"
    )

    status, _, body = call(page, "GET", "/api/renders?page_size=5")
    assert rid in [r["render_id"] for r in json.loads(body)["renders"]]
    assert json.loads(call(page, "GET", f"/api/renders/{rid}")[2])["output"]
    assert post_json(page, f"/api/renders/{rid}/cancel", {})[1]["state"] == "SUCCEEDED"


@pytest.mark.parametrize("name", ["render.json", "hls/../render.json", "..", "tasks/0.json"])
def test_hostile_file_names_are_refused(page, name):
    face = upload(page, "f.png", b"x", "face")
    audio = upload(page, "a.wav", b"y", "audio")
    rid = post_json(page, "/api/renders", {"spec": {"face": face, "audio": audio}})[1]["renders"][0][
        "render_id"
    ]
    status, _, body = call(page, "GET", f"/api/renders/{rid}/files/{name}")
    assert status in (400, 404), body  # '..' may be normalised away by the HTTP layer: never a file
    if status == 400:
        assert json.loads(body)["code"] == "INVALID_ARGUMENT"


def test_bad_input_names_its_field(page):
    face = upload(page, "f.png", b"x", "face")
    status, body = post_json(
        page, "/api/renders", {"spec": {"face": face, "text": "hi", "passes": 3, "upscale": 9}}
    )
    assert status == 400 and body["code"] == "INVALID_ARGUMENT"
    assert "passes" in body["fields"] and "upscale" in body["fields"]
    status, body = post_json(page, "/api/renders", {"spec": {"face": face, "passes": "x"}})
    assert status == 400 and "spec" in body["error"]
    status, _, raw = call(page, "PUT", "/api/uploads?filename=empty.png&field=face", b"", PAGE)
    assert status == 400 and "face" in json.loads(raw)["fields"]


def test_another_tenants_render_is_not_found(page):
    face = page["bob"].upload_stream("f.png", [b"bob's face"])
    audio = page["bob"].upload_stream("a.wav", [b"bob's speech"])
    [r] = page["bob"].create(render_pb2.RenderSpec(face=face, audio=audio))
    for path in (f"/api/renders/{r.render_id}", f"/api/renders/{r.render_id}/events",
                 f"/api/renders/{r.render_id}/files/output.mp4"):  # fmt: skip
        assert call(page, "GET", path)[0] == 404


@pytest.mark.parametrize(
    "message, fields",
    [
        ("invalid render: passes=3: must be 1 or 2; upscale=9: must be 1, 2, 3 or 4", {"passes", "upscale"}),
        ("invalid render: give exactly one of audio or text", {"speech"}),
        ("no face found in the image: use a frontal, well-lit photo", {"face"}),
        ("render 1 of 1: invalid render: reference_offset_s=-1.0: must be >= 0", {"reference_offset_s"}),
        ("invalid render: background color 'blurple': use #rrggbb", {"background"}),
        ("invalid render: motion 'jumpy': expected one of calm", {"motion"}),
        ("invalid render: keep_lips needs a reference video", {"keep_lips"}),
        ("something else went wrong", {"form"}),
    ],
)
def test_messages_map_to_fields(message, fields):
    assert set(fields_of(message)) == fields


def test_parse_range():
    assert parse_range("bytes=5-") == (5, None) and parse_range("bytes=5-9") == (5, 9)
    assert parse_range("bytes=9-5") is None and parse_range("items=1-2") is None and parse_range("") is None


def test_state_changing_calls_need_the_page_header(page):
    """Another web page in the user's browser cannot use this server's token: without the header
    (which a cross-origin page cannot add without a preflight) uploads, creates and cancels are refused."""
    status, _, body = call(page, "POST", "/api/renders/0123456789abcdef/cancel", b"")
    assert status == 403 and "x-lihq-ui" in json.loads(body)["error"]
    status, _, _ = call(page, "PUT", "/api/uploads?filename=a.png&field=face", b"x")
    assert status == 403
    status, _, _ = call(page, "POST", "/api/renders", b"{}", {"Content-Type": "text/plain"})
    assert status == 403
    assert post_json(page, "/api/renders", ["not", "an", "object"])[0] == 400


def test_host_header_must_be_allowed():
    from lihq_cli.ui.app import create_app

    with Client("127.0.0.1:1") as c, ui_server(c, allowed_hosts=["127.0.0.1"]) as url:
        req = urllib.request.Request(url + "/api/knobs", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=30)
        assert ei.value.code == 400
        with urllib.request.urlopen(url + "/api/knobs", timeout=30) as r:
            assert r.status == 200
    assert create_app  # the factory the CLI uses
