"""Dubbing a face video (issue #15): ping-pong frame mapping, reading segments, crops, the feathered
paste, rotation / odd sizes / variable frame rate, and the header sniffing that picks the video path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from lihq.errors import InvalidInput
from services.media import video_face as vf
from tests.videofaces import astronaut_frames, encode, with_rotation


def test_pingpong_goes_back_and_forth_without_repeating_the_ends():
    assert [vf.pingpong(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [vf.pingpong(i, 2) for i in range(5)] == [0, 1, 0, 1, 0]
    assert [vf.pingpong(i, 1) for i in range(3)] == [0, 0, 0]
    assert [vf.pingpong(i, 100) for i in range(50)] == list(range(50))  # a longer video is just cut
    with pytest.raises(InvalidInput):
        vf.pingpong(0, 0)


def test_neighbouring_output_frames_are_neighbouring_source_frames():
    n = 7
    steps = {abs(vf.pingpong(i + 1, n) - vf.pingpong(i, n)) for i in range(60)}
    assert steps == {1}  # no jump cut anywhere


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    frames = astronaut_frames(160, 120, 6)
    frames[:, :4, :4] = np.arange(6, dtype=np.uint8)[:, None, None, None] * 40  # frame id in a corner
    path = encode(frames, tmp_path_factory.mktemp("vf") / "face.mp4", fps=25)
    return path, frames


def _frame_id(frame: np.ndarray) -> int:
    return int(round(float(frame[:4, :4].mean()) / 40))


def test_read_segment_plays_the_source_back_and_forth(clip):
    path, _ = clip
    src = vf.source_info(path)
    assert (src.fps, src.width, src.height, src.frames) == (25.0, 160, 120, 6)
    seg = vf.read_segment(path, src, 4, 13)
    assert seg.shape == (9, 120, 160, 3)
    assert (
        [_frame_id(f) for f in seg]
        == [vf.pingpong(i, 6) for i in range(4, 13)]
        == [4, 5, 4, 3, 2, 1, 0, 1, 2]
    )
    samples = vf.read_samples(path, src, 3)
    assert [_frame_id(f) for f in samples] == [0, 2, 5] or [_frame_id(f) for f in samples] == [0, 3, 5]


def test_crop_centres_the_box_and_paste_changes_only_the_box():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 120, 160, 3), dtype=np.uint8)
    boxes = np.array([[30, 90, 50, 110]] * 3)  # y1 y2 x1 x2
    crops = vf.crop_faces(frames, boxes, 128)
    assert crops.shape == (3, 128, 128, 3)
    restored = np.full_like(crops, 255)
    detected = np.array([True, False, True])
    out = vf.paste_faces(frames, restored, boxes, detected, 128)
    outside = np.ones((120, 160), bool)
    outside[30:90, 50:110] = False
    assert np.array_equal(out[:, outside], frames[:, outside])  # away from the box: exactly the source
    assert np.array_equal(out[1], frames[1])  # no face detected: passed through unchanged
    centre = (slice(45, 75), slice(65, 95))
    assert (out[0][centre] == 255).all() and (out[2][centre] == 255).all()  # inside: the restored face
    edge = out[0, 30, 50:110].astype(int) - frames[0, 30, 50:110].astype(int)
    assert np.abs(edge).max() < 40  # feathered: the box's edge barely changes


def test_feather_mask_ramps_from_the_edge():
    m = vf.feather_mask(40, 60)
    assert m.shape == (40, 60) and m.max() == 1.0 and 0 < m.min() < 0.05
    assert m[20, 30] == 1.0 and m[0, 30] < m[3, 30] < m[8, 30]


def test_rotation_metadata_and_odd_size_are_read_in_display_orientation(tmp_path):
    frames = astronaut_frames(161, 121, 3)  # odd size
    path = with_rotation(encode(frames, tmp_path / "plain.mp4"), tmp_path / "phone.mp4")
    src = vf.source_info(path)
    assert (src.width, src.height) == (121, 161)  # display size: turned a quarter
    seg = vf.read_segment(path, src, 0, 2)
    assert seg.shape == (2, 161, 121, 3)
    turned = np.rot90(frames[0], 1)  # rotate=90 is displayed a quarter turn counter-clockwise
    assert np.abs(seg[0].astype(int) - turned.astype(int)).mean() < 8


def test_variable_frame_rate_is_read_at_the_average_rate(tmp_path):
    frames = astronaut_frames(64, 48, 10)
    cfr = encode(frames, tmp_path / "cfr.mp4", fps=20)
    vfr = tmp_path / "vfr.mp4"  # drop every third frame, keep timestamps: a variable frame rate
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(cfr),
            "-vf",
            "select='mod(n+1,3)'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            str(vfr),
        ],
        check=True,
        capture_output=True,
    )
    src = vf.source_info(vfr)
    assert 0 < src.fps < 20 and src.frames >= 5
    seg = vf.read_segment(vfr, src, 0, src.frames)
    assert len(seg) == src.frames  # constant-rate frames at the average rate


def test_header_sniffing_tells_videos_from_images(tmp_path, clip):
    path, frames = clip
    assert vf.looks_like_video(path.read_bytes()[:4096]) is True and vf.is_video_file(path)
    import cv2

    png = tmp_path / "face.png"
    cv2.imwrite(str(png), frames[0])
    assert vf.looks_like_video(png.read_bytes()[:4096]) is False and not vf.is_video_file(png)
    mkv = tmp_path / "face.mkv"
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(path), "-c", "copy", str(mkv)], check=True
    )
    assert vf.is_video_file(mkv)


def test_track_faces_with_the_haar_detector_flags_frames_without_a_face(tmp_path):
    """TrackFaces(detector="haar"): what synthetic-weight video renders use; no weights are loaded."""
    from lihq.framepack import pack_frames
    from lihq.storage.fs import FileStore
    from lihq.v1 import common_pb2, lipsync_pb2
    from services.wav2lip.objects import FaceTrack
    from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
    from services.wav2lip.servicer import LipSyncServicer

    store = FileStore(tmp_path / "store", "lihq")
    frames = astronaut_frames(320, 240, 3)
    frames[1] = 128  # a grey frame: no face
    key = store.put_bytes("cache/t/seg.lfp", pack_frames(frames, fps=25.0)).key
    svc = LipSyncServicer(
        store, Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", weights_dir=tmp_path / "none"))
    )
    req = lipsync_pb2.TrackFacesRequest(
        packs=[common_pb2.ObjectRef(key=key)], carry_last_box=True, detector="haar"
    )
    r = svc._track_faces(req)
    track = FaceTrack.from_bytes(store.get_bytes(r.track.key), "track")
    assert track.detected.tolist() == [True, False, True] and r.carried_frames == 1
    grey = store.put_bytes(
        "cache/t/grey.lfp", pack_frames(np.full((2, 64, 64, 3), 128, np.uint8), fps=25.0)
    ).key
    with pytest.raises(InvalidInput, match="no frame of the clip has a usable face"):
        svc._track_faces(
            lipsync_pb2.TrackFacesRequest(
                packs=[common_pb2.ObjectRef(key=grey)], carry_last_box=True, detector="haar"
            )
        )
    with pytest.raises(InvalidInput, match="detector"):
        svc._track_faces(
            lipsync_pb2.TrackFacesRequest(packs=[common_pb2.ObjectRef(key=key)], detector="yolo")
        )
