"""Progressive playback (issue #18) through the real stack: a multi-segment render publishes an HLS
EVENT playlist in the store while it runs (segments listed, no ENDLIST yet), ends it on success, and
the playlist plays in ffprobe as H.264 + AAC lasting as long as the mp4. Render.playlist and
first_playable_s are set in GetRender and ListRenders.

Adds one tiny render (6 frames, 3 segments, one pass, no upscale) to the session's `serve_stack`.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from PIL import Image

from lihq.config import StoreConfig
from lihq.storage import open_store
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.uploads import chunks
from tests.integration.test_matrix import TERMINAL, streams
from tests.mediafiles import espeak_wav

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def _entries(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def _duration(path) -> float:
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(r.stdout)["format"]["duration"])


def test_playlist_grows_while_rendering_and_plays_after(serve_stack, tmp_path):
    from skimage.data import astronaut

    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut()).save(photo)
    speech = espeak_wav(tmp_path / "speech.wav", "Hi.", wpm=300)  # 0.24 s: 6 frames
    md = serve_stack.md()
    store = open_store(StoreConfig.from_env(serve_stack.env))
    during: list[str] = []  # playlists read while the render was RUNNING
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        face, audio = (stub.UploadInput(chunks(p), metadata=md, timeout=120).object for p in (photo, speech))
        spec = render_pb2.RenderSpec(face=face, audio=audio, passes=1, upscale=1, segment_frames=2)
        [created] = stub.CreateRender(
            render_pb2.CreateRenderRequest(renders=[spec]), metadata=md, timeout=120
        ).renders
        rid = created.render_id
        t0 = time.monotonic()
        deadline = time.monotonic() + 800
        while time.monotonic() < deadline:
            r = stub.GetRender(render_pb2.GetRenderRequest(render_id=rid), metadata=md, timeout=60)
            if r.state in TERMINAL:
                break
            if r.playlist.key:
                text = store.get_bytes(r.playlist.key).decode()
                r2 = stub.GetRender(render_pb2.GetRenderRequest(render_id=rid), metadata=md, timeout=60)
                if r2.state == render_pb2.RENDER_STATE_RUNNING:
                    during.append(text)
            time.sleep(0.2)
        print(
            f"\nHLS: first segment playable {r.first_playable_s:.1f} s, render done ~{time.monotonic() - t0:.1f} s"
        )
        listed = stub.ListRenders(render_pb2.ListRendersRequest(page_size=500), metadata=md, timeout=60)
    assert r.state == render_pb2.RENDER_STATE_SUCCEEDED, (r.error_stage, r.error)
    key = f"renders/{rid}/hls/index.m3u8"
    assert r.playlist.key == key and r.first_playable_s > 0
    [row] = [x for x in listed.renders if x.render_id == rid]
    assert row.playlist.key == key and row.first_playable_s == pytest.approx(r.first_playable_s)

    # while it ran: an EVENT playlist with at least one segment and no ENDLIST
    assert during, "the playlist was never seen while the render ran"
    assert all("#EXT-X-PLAYLIST-TYPE:EVENT" in t and "#EXT-X-ENDLIST" not in t for t in during)
    assert _entries(during[0])

    # after: every segment, ENDLIST, and it plays as H.264 + AAC as long as the mp4
    text = store.get_bytes(key).decode()
    assert text.endswith("#EXT-X-ENDLIST\n") and _entries(text) == [f"seg_{k:05d}.ts" for k in range(3)]
    local = tmp_path / "hls"
    local.mkdir()
    (local / "index.m3u8").write_text(text)
    for name in _entries(text):
        store.get_file(f"renders/{rid}/hls/{name}", local / name)
    s = streams(local / "index.m3u8")
    assert (s["video"]["codec_name"], s["audio"]["codec_name"]) == ("h264", "aac")
    mp4 = tmp_path / "out.mp4"
    store.get_file(r.output.key, mp4)
    assert _duration(local / "index.m3u8") == pytest.approx(_duration(mp4), abs=0.05)
