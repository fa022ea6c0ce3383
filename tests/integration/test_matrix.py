"""The feature matrix: every `lihq render` knob, end to end through the real stack.

`lihq serve --weights synthetic` (local Ray + every stage app behind Serve's gRPC proxy + the real S3
server + ffmpeg) renders four tiny videos that together set every knob: reference video + offset,
text (espeak TTS), interpolation, colour / image / video backgrounds, paste-back onto a photo larger
than the face, GFPGAN 1.4 and 1.3, wav2lip and wav2lip_gan, passes 1 and 2, upscale, draft, seed,
several segments per render. Inputs go in through UploadInput; each output is checked: H.264 + AAC,
fps = 25·(k+1), the size the knobs imply, video duration = audio duration = the speech (or the draft).
This is also the smoke render through the API that a deployment runs with synthetic weights.
"""

from __future__ import annotations

import json
import subprocess
import time

import grpc
import pytest
from PIL import Image

from lihq import media
from lihq.config import StoreConfig
from lihq.storage import open_store
from lihq.v1 import common_pb2, render_pb2, render_pb2_grpc
from orchestrator.uploads import chunks
from tests.mediafiles import espeak_wav, lavfi_image, lavfi_video

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]
TERMINAL = {
    render_pb2.RENDER_STATE_SUCCEEDED,
    render_pb2.RENDER_STATE_FAILED,
    render_pb2.RENDER_STATE_CANCELLED,
}


def wait_succeeded(stub, ids: dict[str, str], md, timeout_s: float) -> dict[str, render_pb2.Render]:
    """Poll GetRender until every render in `ids` (name -> id) ends; assert they all SUCCEEDED."""
    done: dict[str, render_pb2.Render] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ids) and time.monotonic() < deadline:
        for name, rid in ids.items():
            if name not in done:
                r = stub.GetRender(render_pb2.GetRenderRequest(render_id=rid), metadata=md, timeout=60)
                if r.state in TERMINAL:
                    done[name] = r
        time.sleep(2.0)
    assert set(done) == set(ids), f"renders still running: {sorted(set(ids) - set(done))}"
    failed = {
        n: (r.error_stage, r.error) for n, r in done.items() if r.state != render_pb2.RENDER_STATE_SUCCEEDED
    }
    assert not failed, failed
    return done


def streams(path) -> dict[str, dict]:
    """codec_type -> the stream's ffprobe fields (duration from the stream itself, not the container)."""
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return {s["codec_type"]: s for s in json.loads(r.stdout)["streams"]}


def _rate(s: dict) -> float:
    num, den = s["avg_frame_rate"].split("/")
    return float(num) / float(den)


def test_every_render_knob_end_to_end(serve_stack, tmp_path):
    from skimage.data import astronaut

    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut()).save(photo)  # 512², the face ~1/5 of it: paste-back has room
    # GFPGAN costs seconds per face on CPU: speech of a few frames keeps the matrix within minutes
    speech = espeak_wav(tmp_path / "speech.wav", "Hi.", wpm=300)  # 0.24 s: Wav2Lip needs >= 0.19 s
    ref = lavfi_video(tmp_path / "ref.mp4", seconds=3.0, size="320x240", rate=30)
    bg_image = lavfi_image(tmp_path / "bg.png", size="320x240", color="navy")
    bg_video = lavfi_video(tmp_path / "bg.mp4", seconds=2.0, size="200x160", rate=25)
    originals = {p: p.read_bytes() for p in (photo, speech, ref, bg_image, bg_video)}
    speech_s = media.probe(speech).duration
    md = serve_stack.md()  # the admin token `lihq serve` made on its first start
    store = open_store(StoreConfig.from_env(serve_stack.env))

    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)

        def up(path) -> common_pb2.ObjectRef:
            return stub.UploadInput(chunks(path), metadata=md, timeout=120).object

        face, audio, ref_v, img, vid = (up(p) for p in (photo, speech, ref, bg_image, bg_video))
        specs = {
            # reference video + offset, TTS, two passes, GFPGAN 1.4, wav2lip, ×2, seed, QVI k=1, colour
            "reference_text": render_pb2.RenderSpec(
                face=face,
                text="Hi.",
                tts_backend="espeak",
                reference_video=ref_v,
                reference_offset_s=0.5,
                passes=2,
                wav2lip_checkpoint="wav2lip",
                gfpgan_version="1.4",
                upscale=2,
                seed=5,
                interpolate=1,
                background=render_pb2.BackgroundSpec(color="#00ff00"),
                segment_frames=4,
            ),
            # one pass, paste-back onto the photo, draft (first 0.12 s: 3 frames)
            "paste_draft": render_pb2.RenderSpec(
                face=face,
                audio=audio,
                passes=1,
                upscale=1,
                paste_back=True,
                draft_seconds=0.12,
                segment_frames=2,
            ),
            # background image, wav2lip_gan + GFPGAN 1.3
            "image_bg": render_pb2.RenderSpec(
                face=face,
                audio=audio,
                passes=1,
                upscale=1,
                wav2lip_checkpoint="wav2lip_gan",
                gfpgan_version="1.3",
                background=render_pb2.BackgroundSpec(image=img, speaker_scale=0.5, offset_x=10),
                segment_frames=5,
            ),
            # background video with an offset, QVI k=2 (75 fps)
            "video_bg": render_pb2.RenderSpec(
                face=face,
                audio=audio,
                passes=1,
                upscale=1,
                interpolate=2,
                background=render_pb2.BackgroundSpec(video=vid, video_offset_s=0.5),
                segment_frames=5,
            ),
        }
        names = list(specs)
        created = stub.CreateRender(
            render_pb2.CreateRenderRequest(renders=[specs[n] for n in names], idempotency_key="matrix-1"),
            metadata=md,
            timeout=300,
        ).renders
        ids = dict(zip(names, (r.render_id for r in created), strict=True))
        done = wait_succeeded(stub, ids, md, 1300)

    expect = {  # name -> (width, height, fps, seconds)
        "reference_text": (512, 512, 50.0, None),  # the TTS speech's length: audio == video below
        "paste_draft": (512, 512, 25.0, 0.12),
        "image_bg": (320, 240, 25.0, speech_s),
        "video_bg": (200, 160, 75.0, speech_s),
    }
    for name, (w, h, fps, seconds) in expect.items():
        out = tmp_path / f"{name}.mp4"
        store.get_file(done[name].output.key, out)
        s = streams(out)
        v, a = s["video"], s["audio"]
        assert (v["codec_name"], a["codec_name"]) == ("h264", "aac"), name
        assert (v["width"], v["height"]) == (w, h), name
        assert _rate(v) == pytest.approx(fps), name
        v_s, a_s = float(v["duration"]), float(a["duration"])
        assert abs(v_s - a_s) <= 1 / fps + 0.03, (name, v_s, a_s)  # AAC frames round the audio up
        if seconds is not None:
            assert abs(v_s - seconds) <= 1 / 25 + 1e-3, (name, v_s, seconds)
        else:
            assert v_s > 0.1, name
    for path, data in originals.items():
        assert path.read_bytes() == data  # inputs untouched


def test_reference_video_shorter_than_offset_plus_speech_is_refused(serve_stack, tmp_path):
    """INVALID_ARGUMENT naming the reference video: at creation, or (when the check runs as the render's
    first task) as the render's error code."""
    from skimage.data import astronaut

    md = serve_stack.md()  # the admin token `lihq serve` made on its first start
    speech = espeak_wav(tmp_path / "speech.wav", "Hi.", wpm=300)  # 0.24 s: Wav2Lip needs >= 0.19 s
    ref = lavfi_video(tmp_path / "short.mp4", seconds=1.0, size="160x120", rate=25)
    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut()).save(photo)
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        refs = [stub.UploadInput(chunks(p), metadata=md, timeout=120).object for p in (photo, speech, ref)]
        spec = render_pb2.RenderSpec(
            face=refs[0], audio=refs[1], reference_video=refs[2], reference_offset_s=0.9, passes=1
        )
        try:
            r = stub.CreateRender(render_pb2.CreateRenderRequest(renders=[spec]), metadata=md, timeout=120)
        except grpc.RpcError as exc:
            code, message = exc.code().name, exc.details()
        else:
            rid = r.renders[0].render_id
            final = None
            for ev in stub.WatchRender(
                render_pb2.WatchRenderRequest(render_id=rid), metadata=md, timeout=600
            ):
                if ev.render.state in TERMINAL:
                    final = ev.render
                    break
            assert final is not None and final.state == render_pb2.RENDER_STATE_FAILED
            code, message = final.error_code, final.error
    assert code == "INVALID_ARGUMENT", message
    assert "reference video" in message
