"""`lihq ui`: a web page for renders, served by FastAPI, talking to RenderService only through
lihq.client.Client (so it works against `lihq serve` or a cluster's gRPC proxy).

Why FastAPI + uvicorn and not Gradio (the field's usual demo framework): both already come with
ray[serve], so the page adds no heavy dependency; the page is plain HTML + JS + CSS with stable element
ids that a browser test drives (no build step, nothing fetched from the internet: hls.js is vendored);
and the server is a thin JSON / server-sent-events proxy over any RenderService, holding the API token
itself so that it never reaches the browser.

Routes (JSON unless said):
    GET  /                                   the page
    GET  /api/knobs                          the form: every RenderSpec knob with its one-line help
    PUT  /api/uploads?filename=F&field=face  raw body -> UploadInput; {key, sha256, size}
    POST /api/renders                        {"spec": RenderSpec as proto JSON} -> CreateRender
    GET  /api/renders[?page_token=]          ListRenders (one page)
    GET  /api/renders/<id>                   GetRender
    GET  /api/renders/<id>/events            WatchRender as server-sent events (one `render` per change)
    POST /api/renders/<id>/cancel            CancelRender
    GET  /api/renders/<id>/files/<name>      ReadRenderFile (output.mp4, hls/index.m3u8, hls/<segment>);
                                             Range requests; ?download=1 for an attachment
Errors answer {"error": message, "code": gRPC code name, "fields": {form field: [messages]}}: the
server's INVALID_ARGUMENT messages name the spec field they are about, which the page shows next to it.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from lihq.client import STATE_NAMES, Client
from lihq.errors import LihqError
from lihq.stages import TASK_ORDER

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 2 * 1024**3  # the page's own cap on one request body; the RenderService sets its own

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".aac": "audio/aac",
}

# (form field, pattern): which field a server message is about. Checked in order, first match wins, so
# the specific names come before the general ones ("reference_offset_s" before "reference video").
FIELD_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (f, re.compile(p, re.I))
    for f, p in [
        ("reference_offset_random", r"reference_offset_random|offset random"),
        ("reference_offset_s", r"reference_offset_s|\boffset\b.*reference|reference video.*(short|offset)"),
        ("keep_lips", r"keep_lips|keep.lips"),
        ("motion", r"\bmotion\b"),
        ("reference_video", r"reference[_ ]video|\breference\b"),
        ("tts_backend", r"tts_backend"),
        ("voice", r"\bvoice\b"),
        ("speech", r"audio or text|\btext\b|\bspeech\b|\baudio\b"),
        ("passes", r"\bpasses\b"),
        ("wav2lip_checkpoint", r"wav2lip"),
        ("pads", r"\bpads?\b|pad_(top|bottom|left|right)"),
        ("gfpgan_version", r"gfpgan"),
        ("upscale", r"upscale"),
        ("interpolate", r"interpolate"),
        ("segment_frames", r"segment_frames"),
        ("draft_seconds", r"draft"),
        ("seed", r"\bseed\b"),
        ("paste_back", r"paste_back|paste-back"),
        ("background", r"background|speaker_scale|speaker offset|rotation_deg"),
        ("face", r"\bface\b"),
        ("webhook_url", r"webhook"),
    ]
]


def fields_of(message: str) -> dict[str, list[str]]:
    """The form fields a server message is about: {field: [the parts of the message naming it]}.
    A CreateRender refusal lists its problems after 'invalid render: ', separated by '; '."""
    body = re.sub(r"^(render \d+( of \d+)?: )?(invalid render: )?", "", message.strip())
    out: dict[str, list[str]] = {}
    for part in [p.strip() for p in body.split("; ") if p.strip()]:
        field = next((f for f, pat in FIELD_PATTERNS if pat.search(part)), "form")
        out.setdefault(field, []).append(part)
    return out


# -- the form ----------------------------------------------------------------------------------------
# (spec field, label, kind, one-line explanation[, choices]) in the order the page shows them. The
# explanations follow protos/lihq/v1/render.proto and `lihq render --help`.
KNOBS: list[dict[str, Any]] = [
    {"name": "face", "label": "Face", "kind": "file", "accept": "image/*,video/*",
     "help": "A photo (png/jpg) with one frontal, well-lit face, or a video of a speaker to dub."},
    {"name": "audio", "label": "Speech audio", "kind": "file", "accept": "audio/*,video/*",
     "help": "What the face says: any audio ffmpeg reads. Or leave it empty and type text below."},
    {"name": "text", "label": "…or text", "kind": "textarea",
     "help": "Text to speak through TTS instead of an audio file."},
    {"name": "voice", "label": "Voice", "kind": "text", "help": "TTS voice (with text), e.g. an espeak voice such as 'en-us'."},
    {"name": "tts_backend", "label": "TTS backend", "kind": "select", "choices": ["", "espeak", "tortoise", "bark"],
     "help": "Which TTS model speaks the text (empty: the best one whose weights are present)."},
    {"name": "reference_video", "label": "Reference video", "kind": "file", "accept": "video/*",
     "help": "A video whose head and eye motion drive the face (FOMM). Empty: a seeded procedural sway/nod."},
    {"name": "reference_offset_s", "label": "Reference offset (s)", "kind": "number", "step": "0.01", "min": 0,
     "help": "Seconds into the reference video where the motion starts."},
    {"name": "reference_offset_random", "label": "Random offset", "kind": "bool",
     "help": "Pick the reference offset at random from the seed, anywhere the whole speech fits."},
    {"name": "keep_lips", "label": "Keep the reference's lips", "kind": "bool",
     "help": "The reference speaker says the same words: keep its mouth and skip Wav2Lip."},
    {"name": "motion", "label": "Motion preset", "kind": "select", "choices": ["", "sway", "calm", "lively", "nodding", "still"],
     "help": "Procedural head motion without a reference video (empty: sway, LIHQ's default)."},
    {"name": "passes", "label": "Passes", "kind": "select", "choices": ["2", "1"],
     "help": "2 (LIHQ's default): a second FOMM + GFPGAN pass upscales and sharpens; 1 is faster."},
    {"name": "wav2lip_checkpoint", "label": "Wav2Lip checkpoint", "kind": "select", "choices": ["wav2lip_gan", "wav2lip"],
     "help": "wav2lip_gan: sharper mouths (default); wav2lip: the more accurate sync of the original paper."},
    {"name": "pads", "label": "Mouth pads (top bottom left right)", "kind": "pads",
     "help": "Pixels added around the detected face for Wav2Lip; more bottom padding includes the chin (0 20 0 0)."},
    {"name": "gfpgan_version", "label": "GFPGAN version", "kind": "select", "choices": ["1.3", "1.4"],
     "help": "Face restoration: 1.3 (LIHQ's default, more natural) or 1.4 (more detail)."},
    {"name": "upscale", "label": "Upscale", "kind": "select", "choices": ["4", "3", "2", "1"],
     "help": "Output size from the 256² face: ×4 = 1024² (default), ×1 = 256² (fast previews)."},
    {"name": "background_upsampler", "label": "Background upsampler", "kind": "bool",
     "help": "Upscale the area around the face with RealESRGAN x2plus too (slower)."},
    {"name": "interpolate", "label": "Interpolate (k)", "kind": "number", "min": 0, "max": 7, "step": "1",
     "help": "QVI frame interpolation: k new frames between each pair, 25·(k+1) fps; 0 = off."},
    {"name": "background", "label": "Background", "kind": "background",
     "help": "Replace the background (MODNet matting): a colour (#00ff00, green), an image or a video."},
    {"name": "paste_back", "label": "Paste back", "kind": "bool",
     "help": "Paste the talking face back onto the original photo instead of the square crop."},
    {"name": "draft_seconds", "label": "Draft (s)", "kind": "number", "min": 0, "step": "0.1",
     "help": "Render only the first N seconds, as a quick preview (0: everything)."},
    {"name": "seed", "label": "Seed", "kind": "number", "min": 0, "step": "1",
     "help": "Seeds the procedural motion and the random offset: the same seed gives the same video."},
    {"name": "segment_frames", "label": "Segment frames", "kind": "number", "min": 0, "max": 1000, "step": "1",
     "help": "Frames per scheduled task and per HLS segment (0: 50). Smaller: playable sooner."},
]  # fmt: skip


def knobs() -> list[dict[str, Any]]:
    """KNOBS, limited to the fields this RenderSpec has, plus any newer scalar field it has (shown with
    its proto name), so the page offers every knob of the server's proto."""
    from google.protobuf.descriptor import FieldDescriptor

    from lihq.v1 import render_pb2

    fields = render_pb2.RenderSpec.DESCRIPTOR.fields_by_name
    grouped = {"pads": ("pad_top",), "background": ("background",)}
    known = {n for k in KNOBS for n in grouped.get(k["name"], (k["name"],))}
    known |= {"pad_bottom", "pad_left", "pad_right", "face_video"}
    out = [k for k in KNOBS if all(n in fields for n in grouped.get(k["name"], (k["name"],)))]
    for name, f in fields.items():
        if name in known or f.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        kind = (
            "bool"
            if f.type == FieldDescriptor.TYPE_BOOL
            else "text"
            if f.type == FieldDescriptor.TYPE_STRING
            else "number"
        )
        out.append(
            {
                "name": name,
                "label": name,
                "kind": kind,
                "help": "(see protos/lihq/v1/render.proto)",
                "extra": True,
            }
        )
    return out


# -- renders as JSON -----------------------------------------------------------------------------------
_RANK = {s: i for i, s in enumerate(TASK_ORDER)}  # stages in pipeline order, as `lihq render` shows them


def render_json(r: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    playlist = getattr(r, "playlist", None)
    out = {
        "render_id": r.render_id,
        "state": STATE_NAMES.get(r.state, str(r.state)),
        "progress": [
            {"stage": p.stage, "done": p.done, "total": p.total}
            for p in sorted(r.progress, key=lambda p: (_RANK.get(p.stage, len(_RANK)), p.stage))
        ],
        "eta_s": r.eta_s,
        "output": r.output.key,
        "playlist": playlist.key if playlist is not None else "",
        "first_playable_s": getattr(r, "first_playable_s", 0.0),
        "error": r.error,
        "error_stage": r.error_stage,
        "error_code": r.error_code,
        "error_fields": fields_of(r.error) if r.error else {},
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "queue_position": r.queue_position,
        "spec": MessageToDict(r.spec, preserving_proto_field_name=True),
    }
    return out


def error_body(exc: LihqError) -> dict[str, Any]:
    return {"error": exc.message, "code": exc.code, "fields": fields_of(exc.message)}


def spec_from_json(data: Any) -> Any:
    """The page's spec (proto JSON of RenderSpec) -> a RenderSpec; a malformed one is InvalidInput."""
    from google.protobuf.json_format import ParseDict, ParseError

    from lihq.errors import InvalidInput
    from lihq.v1 import render_pb2

    if not isinstance(data, dict):
        raise InvalidInput("spec: expected a JSON object of RenderSpec fields")
    try:
        return ParseDict(data, render_pb2.RenderSpec())
    except ParseError as exc:
        raise InvalidInput(f"spec: {exc}") from None


def parse_range(header: str) -> tuple[int, int | None] | None:
    """'bytes=N-' or 'bytes=N-M' -> (N, M or None); anything else -> None (the whole file)."""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
    if not m:
        return None
    start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else None
    return None if end is not None and end < start else (start, end)


UI_HEADER = "x-lihq-ui"  # every state-changing call from the page carries it (see create_app)


def create_app(
    client: Client, max_upload_bytes: int = MAX_UPLOAD_BYTES, allowed_hosts: list[str] | None = None
):
    """The page's server. It acts with `client`'s token, so two guards keep other web pages from using
    it through the user's browser: state-changing calls must carry the X-LIHQ-UI header (a cross-origin
    page cannot send it without a CORS preflight, which this server never approves), and with
    `allowed_hosts` the Host header must name one of them (DNS rebinding)."""
    app = FastAPI(title="LIHQ", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def _same_page_only(request: Request, call_next):
        if request.method not in ("GET", "HEAD") and not request.headers.get(UI_HEADER):
            body = {
                "error": f"missing the {UI_HEADER} header: call this API from the LIHQ page",
                "code": "PERMISSION_DENIED",
                "fields": {},
            }
            return JSONResponse(body, status_code=403)
        return await call_next(request)

    @app.exception_handler(LihqError)
    async def _lihq_error(request: Request, exc: LihqError):
        return JSONResponse(error_body(exc), status_code=HTTP_STATUS.get(exc.code, 500))

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/knobs")
    async def get_knobs():
        return {"knobs": knobs(), "address": client.address}

    @app.put("/api/uploads")
    async def upload(request: Request, filename: str, field: str = "file"):
        from lihq.errors import InvalidInput

        size = 0
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            async for block in request.stream():
                size += len(block)
                if size > max_upload_bytes:
                    raise InvalidInput(
                        f"{field}: the file is over this page's limit of {max_upload_bytes} bytes"
                    )
                spool.write(block)
            spool.seek(0)
            try:
                ref = await run_in_threadpool(client.upload_stream, filename, spool, size)
            except LihqError as exc:  # the server's message, about this field
                exc.message = f"{field}: {exc.message}" if not exc.message.startswith(field) else exc.message
                return JSONResponse(
                    {"error": exc.message, "code": exc.code, "fields": {field: [exc.message]}},
                    status_code=HTTP_STATUS.get(exc.code, 500),
                )
        return {"key": ref.key, "sha256": ref.sha256, "size": ref.size}

    @app.post("/api/renders")
    async def create(request: Request):
        from lihq.errors import InvalidInput

        try:
            body = await request.json()
        except ValueError:
            raise InvalidInput("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise InvalidInput('the request body must be {"spec": {...}, "idempotency_key": "..."}')
        spec = spec_from_json(body.get("spec"))
        key = str(body.get("idempotency_key", ""))[:200]
        renders = await run_in_threadpool(client.create, spec, key)
        return {"renders": [render_json(r) for r in renders]}

    @app.get("/api/renders")
    async def list_renders(page_token: str = "", page_size: int = 20):
        page = await run_in_threadpool(client.list_page, page_size, page_token)
        return {"renders": [render_json(r) for r in page.renders], "next_page_token": page.next_page_token}

    @app.get("/api/renders/{render_id}")
    async def get_render(render_id: str):
        return render_json(await run_in_threadpool(client.get, render_id))

    @app.post("/api/renders/{render_id}/cancel")
    async def cancel(render_id: str):
        return render_json(await run_in_threadpool(client.cancel, render_id))

    @app.get("/api/renders/{render_id}/events")
    async def events(render_id: str):
        await run_in_threadpool(client.get, render_id)  # a bad / foreign id answers 4xx, not a stream

        async def stream() -> AsyncIterator[str]:
            watch = client.watch(render_id)
            events = iter(watch)
            try:  # one worker thread waits for the next event; a closed page cancels the gRPC stream
                while (ev := await run_in_threadpool(next, events, None)) is not None:
                    yield f"event: render\ndata: {json.dumps(render_json(ev.render))}\n\n"
            except LihqError as exc:
                yield f"event: failure\ndata: {json.dumps(error_body(exc))}\n\n"
            finally:
                watch.cancel()
            yield "event: end\ndata: {}\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.get("/api/renders/{render_id}/files/{name:path}")
    async def read_file(render_id: str, name: str, request: Request, download: int = 0):
        rng = parse_range(request.headers.get("range", ""))
        start = rng[0] if rng else 0
        f = await run_in_threadpool(client.open_file, render_id, name, start)
        total = f.total_size
        end = total - 1 if rng is None or rng[1] is None else min(rng[1], total - 1)
        length = max(0, end - start + 1)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(length),
            "Cache-Control": "no-store" if name.endswith(".m3u8") else "private, max-age=3600",
        }
        if download:
            headers["Content-Disposition"] = f'attachment; filename="lihq-{render_id}-{Path(name).name}"'
        status = 200
        if rng is not None:
            if start >= total and total:
                f.close()
                return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"

        def body() -> Iterator[bytes]:
            left = length
            try:
                for data in f:
                    if left <= 0:
                        break
                    yield data[:left]
                    left -= len(data)
            finally:
                f.close()

        ctype = CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
        return StreamingResponse(body(), status_code=status, media_type=ctype, headers=headers)

    return app
