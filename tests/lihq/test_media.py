"""lihq.media on files made here with ffmpeg's lavfi sources, espeak-ng and Pillow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lihq.errors import InvalidInput
from lihq.media import (
    MediaInfo,
    decode_audio,
    decode_video,
    encode_video,
    iter_video,
    load_image,
    load_image_rgba,
    mux_audio,
    probe,
    write_wav,
)


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def ffprobe_json(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    return json.loads(subprocess.run(cmd, capture_output=True, check=True).stdout)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small test files, made once for the module."""
    d = tmp_path_factory.mktemp("media")
    files = {k: d / v for k, v in {
        "video": "av.mp4", "wav": "sine.wav", "png": "still.png", "solid": "solid.mp4",
        "rot": "rot.mp4", "silent": "silent.mp4", "longaudio": "longaudio.mp4",
    }.items()}  # fmt: skip
    ff("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-f", "lavfi",
       "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       "-c:a", "aac", "-shortest", str(files["video"]))  # fmt: skip
    ff("-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*1000*t)|0.5*sin(2*PI*1000*t):s=44100:d=1",
       "-c:a", "pcm_s16le", str(files["wav"]))  # fmt: skip
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", str(files["png"]))
    ff("-f", "lavfi", "-i", "color=c=0x3366CC:size=96x64:rate=25:duration=1",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", str(files["solid"]))  # fmt: skip
    ff("-f", "lavfi", "-i", "color=red:s=64x32:d=1,drawbox=x=32:y=0:w=32:h=32:color=blue:t=fill",
       "-c:v", "libx264", "-pix_fmt", "yuv420p", str(d / "lr.mp4"))  # fmt: skip
    ff("-i", str(d / "lr.mp4"), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(files["rot"]))
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1", "-c:v", "libx264",
       "-pix_fmt", "yuv420p", str(files["silent"]))  # fmt: skip
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1", "-f", "lavfi", "-i",
       "sine=duration=2", "-c:v", "libx264", "-c:a", "aac", str(files["longaudio"]))  # fmt: skip
    return files


@pytest.fixture(scope="module")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s, 25 fps video whose frame i is uniformly grey level 5*i: frame indices are readable."""
    out = tmp_path_factory.mktemp("ramp") / "ramp.mp4"
    frames = (np.full((48, 64, 3), 5 * i, np.uint8) for i in range(50))
    return encode_video(frames, 25.0, out, crf=0, preset="ultrafast")


def frame_index(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / 5))


# ---------------------------------------------------------------- probe
def test_probe_video_audio_image(media: dict[str, Path]) -> None:
    v = probe(media["video"], require_video=True, require_audio=True)
    assert isinstance(v, MediaInfo)
    assert (v.has_video, v.has_audio, v.width, v.height) == (True, True, 320, 240)
    assert v.fps == 25.0 and v.n_frames == 50 and abs(v.duration - 2.0) < 0.05
    assert (v.video_codec, v.audio_codec, v.audio_rate, v.rotation) == ("h264", "aac", 44100, 0)
    assert v.to_dict()["width"] == 320 and json.dumps(v.to_dict())
    a = probe(media["wav"], require_audio=True)
    assert not a.has_video and a.audio_channels == 2 and a.audio_rate == 44100
    assert abs(a.duration - 1.0) < 1e-3
    img = probe(media["png"], require_video=True)
    assert img.is_image and img.n_frames == 1 and (img.width, img.height) == (64, 48)


def test_probe_rotation_swaps_display_size(media: dict[str, Path]) -> None:
    info = probe(media["rot"])
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (32, 64)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), {}, "ffprobe cannot read"),
        (lambda p: p.write_bytes(b""), {}, "is empty (0 bytes)"),
        (lambda p: p.write_text("just some words, not a video\n" * 20), {}, "ffprobe cannot read"),
        (lambda p: None, {}, "file not found"),
    ],
    ids=["random-bytes", "zero-length", "text", "missing"],
)
def test_probe_rejects_bad_files(tmp_path: Path, make, kwargs, message: str) -> None:
    p = tmp_path / "input.mp4"
    make(p)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        probe(p, **kwargs)


def test_probe_requirements_and_limits(media: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match="has no video stream"):
        probe(media["wav"], require_video=True)
    with pytest.raises(InvalidInput, match="has no audio stream"):
        probe(media["silent"], require_audio=True)
    with pytest.raises(InvalidInput, match="320x240 pixels; the largest supported is 100x100"):
        probe(media["video"], max_width=100, max_height=100)
    with pytest.raises(InvalidInput, match="lasts 2.0 s; the longest supported is 1 s"):
        probe(media["video"], max_duration=1.0)


# ---------------------------------------------------------------- audio
def test_decode_audio_resamples_to_mono(media: dict[str, Path]) -> None:
    a = decode_audio(media["wav"], 16000)
    assert a.dtype == np.float32 and a.ndim == 1 and a.shape == (16000,)
    assert 0.45 < np.abs(a).max() <= 0.51  # channels averaged, not summed
    spectrum = np.abs(np.fft.rfft(a))
    assert abs(np.argmax(spectrum) * 16000 / len(a) - 1000) <= 2


def test_decode_audio_range_and_video_track(media: dict[str, Path]) -> None:
    a = decode_audio(media["video"], 22050, start=0.5, duration=1.0)
    assert abs(len(a) - 22050) <= 2
    with pytest.raises(InvalidInput, match="no audio stream"):
        decode_audio(media["silent"])
    with pytest.raises(InvalidInput, match="past its end"):
        decode_audio(media["wav"], start=5.0)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_decode_espeak_speech(tmp_path: Path) -> None:
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Hello, this is a talking head."], check=True)
    a = decode_audio(wav, 16000)
    assert len(a) > 0.8 * 16000
    assert float(np.sqrt(np.mean(a**2))) > 0.02


def test_write_wav_float_and_pcm16(tmp_path: Path) -> None:
    t = np.arange(8000, dtype=np.float32) / 8000
    x = (0.6 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    f32 = write_wav(tmp_path / "f.wav", x, 8000)
    info = probe(f32)
    assert info.audio_codec == "pcm_f32le" and info.audio_rate == 8000
    np.testing.assert_allclose(decode_audio(f32, 8000), x, atol=1e-6)
    i16 = write_wav(tmp_path / "i.wav", x, 8000, pcm16=True)
    with wave.open(str(i16)) as w:
        assert (w.getsampwidth(), w.getnchannels(), w.getnframes()) == (2, 1, 8000)
    np.testing.assert_allclose(decode_audio(i16, 8000), x, atol=1e-4)


# ---------------------------------------------------------------- video
def test_decode_video_solid_colour(media: dict[str, Path]) -> None:
    v = decode_video(media["solid"])
    assert v.shape == (25, 64, 96, 3) and v.dtype == np.uint8
    assert np.abs(v.reshape(-1, 3).mean(0) - (0x33, 0x66, 0xCC)).max() < 4


def test_decode_video_range_fps_and_size(ramp: Path) -> None:
    v = decode_video(ramp, start=0.4, duration=0.8)
    assert v.shape == (20, 48, 64, 3)
    assert [frame_index(f) for f in v] == list(range(10, 30))
    half = decode_video(ramp, start=1.0, duration=0.8, fps=12.5, size=(32, 20))
    assert half.shape == (10, 20, 32, 3)
    assert [frame_index(f) for f in half] == list(range(25, 45, 2))
    assert decode_video(ramp, max_frames=7).shape[0] == 7


def test_decode_video_samples_the_frame_on_screen(ramp: Path) -> None:
    """Frame i is the source frame shown at start + i/fps (sample and hold), also off the frame grid."""
    tail = decode_video(ramp, start=1.51, duration=0.5)  # frame 37 spans [1.48, 1.52); N = 13
    assert [frame_index(f) for f in tail] == list(range(37, 50))
    slow = decode_video(ramp, fps=10)
    assert [frame_index(f) for f in slow] == [int(i * 2.5) for i in range(20)]
    fast = decode_video(ramp, start=0.5, duration=0.2, fps=50)
    assert [frame_index(f) for f in fast] == [12, 13, 13, 14, 14, 15, 15, 16, 16, 17]


def test_decode_video_out_of_range(ramp: Path) -> None:
    with pytest.raises(InvalidInput, match=r"lasts 2.000 s, but the range asked is \[1.500, 2.500\)"):
        decode_video(ramp, start=1.5, duration=1.0)
    with pytest.raises(InvalidInput, match="past its end"):
        decode_video(ramp, start=3.0)
    with pytest.raises(InvalidInput, match="fps must be > 0"):
        decode_video(ramp, fps=0)


def test_decode_video_range_uses_the_video_track(media: dict[str, Path]) -> None:
    info = probe(media["longaudio"])  # 1 s of video, 2 s of audio
    assert abs(info.duration - 2.0) < 0.05 and abs(info.video_duration - 1.0) < 1e-3
    assert decode_video(media["longaudio"], start=0.5, duration=0.5).shape[0] == 13
    with pytest.raises(InvalidInput, match="the video lasts 1.000 s"):
        decode_video(media["longaudio"], start=0.5, duration=1.0)


def test_decode_video_rotation_and_chunks(media: dict[str, Path], ramp: Path) -> None:
    v = decode_video(media["rot"], max_frames=1)
    assert v.shape == (1, 64, 32, 3)
    top, bottom = v[0, 5, 16].astype(int), v[0, 58, 16].astype(int)
    assert top[2] > 200 and top[0] < 50  # the right (blue) half is now on top
    assert bottom[0] > 200 and bottom[2] < 50
    chunks = list(iter_video(ramp, chunk=16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), decode_video(ramp))


def test_decode_video_of_image(media: dict[str, Path]) -> None:
    assert decode_video(media["png"]).shape == (1, 48, 64, 3)
    assert decode_video(media["png"], size=(32, 24)).shape == (1, 24, 32, 3)
    with pytest.raises(InvalidInput, match="still image"):
        decode_video(media["png"], duration=1.0)


# ---------------------------------------------------------------- images
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_load_image_applies_exif_orientation(tmp_path: Path, fmt: str) -> None:
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    img.paste((30, 30, 200), (20, 0, 40, 20))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / f"o.{fmt.lower()}"
    img.save(p, fmt, exif=exif.tobytes())
    a = load_image(p)
    assert a.shape == (40, 20, 3) and a.dtype == np.uint8
    assert a[35, 10, 2] > 150 and a[5, 10, 0] > 150  # right half went to the bottom


def test_load_image_alpha_and_grey(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", background=(0, 255, 0))
    assert tuple(out[0, 0]) == (0, 255, 0) and tuple(out[0, 7]) == (255, 0, 0)
    assert load_image_rgba(tmp_path / "a.png").shape == (8, 8, 4)
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (5, 6, 3) and (g == 77).all()
    Image.fromarray(np.full((5, 6), 32896, np.uint16)).save(tmp_path / "g16.png")
    g16 = load_image(tmp_path / "g16.png")
    assert g16.shape == (5, 6, 3) and (g16 == 128).all()


def test_load_image_rejects_non_images(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(InvalidInput, match="cannot read image"):
        load_image(tmp_path / "x.png")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(InvalidInput, match="is empty"):
        load_image(tmp_path / "e.png")
    with pytest.raises(InvalidInput, match="background"):
        load_image(tmp_path / "x.png", background=(0, 0, 300))


# ---------------------------------------------------------------- encode
def _colours(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = ((40 + 4 * i) % 256, 120, 200 - 3 * i)
    return out


@pytest.mark.parametrize("n_frames", [10, 34, 60], ids=["too-few", "exact", "too-many"])
def test_encode_roundtrip_duration_is_audio(tmp_path: Path, n_frames: int) -> None:
    audio = tmp_path / "a.wav"
    ff("-f", "lavfi", "-i", "sine=frequency=300:duration=1.37", str(audio))
    frames = _colours(n_frames)
    out = encode_video(iter(frames), 25.0, tmp_path / "out.mp4", audio_path=audio, preset="ultrafast")
    data = ffprobe_json(out)
    v = next(s for s in data["streams"] if s["codec_type"] == "video")
    a = next(s for s in data["streams"] if s["codec_type"] == "audio")
    assert (v["codec_name"], v["pix_fmt"], v["avg_frame_rate"]) == ("h264", "yuv420p", "25/1")
    assert (v["width"], v["height"], a["codec_name"]) == (64, 48, "aac")
    for dur in (data["format"]["duration"], v["duration"], a["duration"]):
        assert abs(float(dur) - 1.37) <= 1 / 25
    back = decode_video(out)
    assert back.shape == (34, 48, 64, 3)
    k = min(n_frames, 34) - 1
    assert np.abs(back[k].astype(int) - frames[k]).max() <= 4
    assert np.abs(back[-1].astype(int) - frames[k]).max() <= 4  # held (or cut at) the right frame


def test_encode_without_audio_odd_size(tmp_path: Path) -> None:
    frames = _colours(15, 33, 45)
    out = encode_video(frames, 30.0, tmp_path / "odd.mp4", preset="ultrafast")
    info = probe(out)
    assert (info.width, info.height, info.n_frames, info.fps) == (46, 34, 15, 30.0)
    assert abs(info.duration - 0.5) < 1e-3
    back = decode_video(out, fps=30.0)
    assert np.abs(back[:, :33, :45].astype(int) - frames).max() <= 4


def test_encode_rejects_bad_frames(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(InvalidInput, match="no frames"):
        encode_video([], 25.0, out)
    with pytest.raises(InvalidInput, match="uint8"):
        encode_video(np.zeros((2, 8, 8, 3), np.float32), 25.0, out)
    with pytest.raises(InvalidInput, match="differs from the first"):
        encode_video([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 25.0, out)
    with pytest.raises(InvalidInput, match=".mp4"):
        encode_video(_colours(2), 25.0, tmp_path / "x.avi")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_mux_audio_sets_duration(tmp_path: Path, media: dict[str, Path], ramp: Path) -> None:
    out = mux_audio(ramp, media["wav"], tmp_path / "muxed.mp4")
    info = probe(out, require_audio=True)
    assert abs(info.duration - 1.0) <= 1 / 25 and info.audio_codec == "aac"
