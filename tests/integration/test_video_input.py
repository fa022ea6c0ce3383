"""A video as the face (dubbing, issue #15), end to end with synthetic weights.

* RenderService: a 320x240 25 fps clip of the astronaut (5 frames, shorter than the speech, so it plays
  back and forth) uploaded as `face`; CreateRender marks it a video from its header; the render runs
  face check -> frames -> Haar track (synthetic mode) -> Wav2Lip -> GFPGAN on face crops -> feathered
  paste -> encode. The output keeps the clip's size and rate, lasts as long as the speech, is the
  source (up to encoding loss) away from the face and differs from it on the face.
* A video without a face (lavfi testsrc) fails the render's first task: INVALID_ARGUMENT, stage `face`.
* `lihq render --face phone.mp4` of an odd-sized clip with rotation metadata: display orientation,
  padded to even by one pixel (see services/media/video_face.py).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lihq import media
from lihq.config import StoreConfig
from lihq.storage import open_store
from lihq.v1 import common_pb2, render_pb2, render_pb2_grpc
from services.media.face import detect_faces
from services.media.video_face import pingpong
from tests.cliruns import isolated_env
from tests.integration.conftest import REPO, free_port
from tests.mediafiles import espeak_wav, lavfi_video
from tests.videofaces import astronaut_frames, encode, with_rotation

pytestmark = pytest.mark.integration


def _render(serve_stack, store, face_path, speech_path, name):
    face = store.put_file(f"uploads/vid/{name}{face_path.suffix}", face_path)
    speech = store.put_file(f"uploads/vid/{name}.wav", speech_path)
    spec = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=face.key), audio=common_pb2.ObjectRef(key=speech.key)
    )
    with serve_stack.channel() as ch:
        stub = render_pb2_grpc.RenderServiceStub(ch)
        req = render_pb2.CreateRenderRequest(renders=[spec])
        [r] = stub.CreateRender(req, metadata=serve_stack.md(), timeout=60).renders
        assert r.spec.face_video  # told apart from an image by its header, at CreateRender
        watch = render_pb2.WatchRenderRequest(render_id=r.render_id)
        return list(stub.WatchRender(watch, metadata=serve_stack.md(), timeout=900))[-1].render


def test_video_face_is_dubbed_through_render_service(serve_stack, tmp_path):
    store = open_store(StoreConfig.from_env(serve_stack.env))
    src_frames = astronaut_frames(320, 240, 5)
    clip = encode(src_frames, tmp_path / "talking.mp4", fps=25)
    speech = espeak_wav(tmp_path / "new.wav", "Hi there.", wpm=300)
    last = _render(serve_stack, store, clip, speech, "talking")
    assert last.state == render_pb2.RENDER_STATE_SUCCEEDED, last.error
    out = tmp_path / "out.mp4"
    store.get_file(last.output.key, out)
    info = media.probe(out, require_video=True, require_audio=True)
    speech_s = media.probe(speech).duration
    assert (info.width, info.height) == (320, 240) and abs(info.fps - 25.0) < 1e-6
    assert abs(info.duration - speech_s) <= 1 / 25 + 1e-3
    got = media.decode_video(out, fps=25.0)
    source = media.decode_video(clip, fps=25.0)  # what the clip decodes to (its own encoding loss)
    n = len(got)
    assert n == media.frame_count(speech_s, 25.0) and n > len(source)  # ping-pong was needed
    expected = source[[pingpong(i, len(source)) for i in range(n)]]
    # the reference for "encoding loss only": the expected frames through the same encoder settings
    media.encode_video(expected, 25.0, tmp_path / "plain.mp4", crf=18, preset="medium")
    plain = media.decode_video(tmp_path / "plain.mp4", fps=25.0)
    x, y, w, h = detect_faces(src_frames[0])[0]
    away = np.ones(got.shape[1:3], bool)
    away[max(0, y - 40) : y + h + 60, max(0, x - 40) : x + w + 40] = False  # the face box, generously
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    loss = np.abs(plain.astype(np.int16) - expected.astype(np.int16))
    stats = (diff[:, away].mean(), loss[:, away].mean())
    assert stats[0] <= stats[1] + 0.3, stats  # away from the face: the encoder's own loss, no more
    face = (slice(y + h // 4, y + h), slice(x + w // 4, x + 3 * w // 4))
    changed = [diff[i][face].mean() - loss[i][face].mean() for i in range(n)]
    assert min(changed) > 4.0, changed  # every frame's face was redone


def test_video_without_a_face_fails_the_face_task(serve_stack, tmp_path):
    store = open_store(StoreConfig.from_env(serve_stack.env))
    clip = lavfi_video(tmp_path / "pattern.mp4", seconds=1.0, size="160x120", rate=25)
    speech = espeak_wav(tmp_path / "s.wav", "Hi.", wpm=300)
    last = _render(serve_stack, store, clip, speech, "pattern")
    assert last.state == render_pb2.RENDER_STATE_FAILED
    assert (last.error_code, last.error_stage) == ("INVALID_ARGUMENT", "face")
    assert last.error.startswith("face: no face found"), last.error


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_lihq_render_dubs_a_rotated_odd_sized_phone_clip(tmp_path):
    upright = astronaut_frames(161, 241, 4)  # odd size, portrait as the phone shows it
    coded = np.ascontiguousarray(np.rot90(upright, -1, axes=(1, 2)))  # stored sideways (241 x 161) ...
    phone = with_rotation(encode(coded, tmp_path / "plain.mp4", fps=30), tmp_path / "phone.mp4")  # + tag
    speech = espeak_wav(tmp_path / "speech.wav", "Hi.", wpm=300)
    before = phone.read_bytes()
    out = tmp_path / "dubbed.mp4"
    env = isolated_env(tmp_path / "home")
    cmd = [sys.executable, "-m", "lihq_cli.main", "render", "--face", str(phone), "--audio", str(speech)]
    cmd += ["--weights", "synthetic", "-o", str(out), "--grpc-port", str(free_port())]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1100)
    assert r.returncode == 0, r.stderr[-4000:]
    info = media.probe(out, require_video=True, require_audio=True)
    assert (info.width, info.height, info.rotation) == (162, 242, 0)  # display orientation, padded to even
    assert abs(info.fps - 30.0) < 1e-6 and abs(info.duration - media.probe(speech).duration) <= 1 / 30 + 1e-3
    first = media.decode_video(out, fps=30.0, max_frames=1)[0]
    bottom = np.abs(first[-12:-1, :161].astype(int) - upright[0, -11:].astype(int)).mean()
    assert bottom < 8, bottom  # upright (display orientation); the padded row / column is extra
    assert phone.read_bytes() == before
