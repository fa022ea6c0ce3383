"""Issue #15 parts 2-3 end to end: --keep-lips, --offset random and a motion preset through the real stack.

One CreateRender through `lihq serve --weights synthetic` (the session `serve_stack`: local Ray, every
stage app behind Serve's gRPC proxy, the real S3 server, ffmpeg) carries two tiny one-pass renders:
the reference video's own lips (no Wav2Lip task may run) from a seeded random start, and procedural
motion with the `nodding` preset. Each output is checked (H.264 + AAC, 256², video = audio = the draft's length);
the random start is the one the seed picks for these lengths and is reported in Render.spec.
"""

from __future__ import annotations

import pytest
from PIL import Image

from lihq import media
from lihq.config import StoreConfig
from lihq.storage import open_store
from lihq.v1 import render_pb2, render_pb2_grpc
from orchestrator.spec import RenderSpec, resolve_reference_offset
from orchestrator.uploads import chunks
from tests.integration.test_matrix import streams, wait_succeeded
from tests.mediafiles import espeak_wav, lavfi_video

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def test_keep_lips_random_offset_and_motion_preset(serve_stack, tmp_path):
    from skimage.data import astronaut

    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut()).save(photo)
    speech = espeak_wav(tmp_path / "speech.wav", "Hi.", wpm=300)  # 0.24 s: a few frames of GFPGAN
    ref = lavfi_video(tmp_path / "ref.mp4", seconds=3.0, size="320x240", rate=30)
    speech_s, ref_s = media.probe(speech).duration, media.probe(ref).duration
    md = serve_stack.md()
    store = open_store(StoreConfig.from_env(serve_stack.env))
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        face, audio, ref_v = (
            stub.UploadInput(chunks(p), metadata=md, timeout=120).object for p in (photo, speech, ref)
        )
        # one pass at 256², the first 0.12 s (3 frames, 2 segments): GFPGAN costs seconds per frame on CPU
        one_pass = {"passes": 1, "upscale": 1, "segment_frames": 2, "draft_seconds": 0.12}
        specs = {
            "keep_lips": render_pb2.RenderSpec(
                face=face,
                audio=audio,
                reference_video=ref_v,
                keep_lips=True,
                reference_offset_random=True,
                seed=5,
                **one_pass,
            ),
            "nodding": render_pb2.RenderSpec(face=face, audio=audio, motion="nodding", seed=2, **one_pass),
        }
        created = stub.CreateRender(
            render_pb2.CreateRenderRequest(renders=list(specs.values()), idempotency_key="motion-options-1"),
            metadata=md,
            timeout=300,
        ).renders
        ids = dict(zip(specs, (r.render_id for r in created), strict=True))
        done = wait_succeeded(stub, ids, md, 800)

    stages = {n: {p.stage for p in r.progress} for n, r in done.items()}
    assert "wav2lip" not in stages["keep_lips"] and {"fomm", "gfpgan"} <= stages["keep_lips"]
    assert "wav2lip" in stages["nodding"]  # the procedural render lip-syncs as usual
    # the random start: the one seed 5 picks for these lengths, inside the reference, reported back
    spec = RenderSpec(
        face_key="f", audio_key="a", reference_video_key="r", reference_offset_random=True, seed=5
    )
    expected = resolve_reference_offset(spec, ref_s, speech_s).reference_offset_s
    got = done["keep_lips"].spec
    assert got.reference_offset_random and got.reference_offset_s == pytest.approx(expected, abs=1e-9)
    assert 0 < got.reference_offset_s <= ref_s - speech_s
    assert done["nodding"].spec.motion == "nodding"

    for name, r in done.items():
        out = tmp_path / f"{name}.mp4"
        store.get_file(r.output.key, out)
        s = streams(out)
        v, a = s["video"], s["audio"]
        assert (v["codec_name"], a["codec_name"]) == ("h264", "aac"), name
        assert (v["width"], v["height"]) == (256, 256), name
        v_s, a_s = float(v["duration"]), float(a["duration"])
        assert abs(v_s - 0.12) <= 1 / 25 + 1e-3, (name, v_s)  # the draft's length
        assert abs(v_s - a_s) <= 1 / 25 + 0.03, (name, v_s, a_s)
