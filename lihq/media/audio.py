"""Audio in and out: `decode_audio` (anything ffmpeg reads -> float32 mono) and `write_wav`."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import ffmpeg
import numpy as np

from lihq.errors import InvalidInput
from lihq.media._ff import FfmpegProcess, ff_url, ffmpeg_argv, short_reason
from lihq.media.probe import probe


def _check_range(path: Path, start: float, duration: float | None, total: float) -> None:
    if start < 0:
        raise InvalidInput(f"start must be >= 0 s, got {start}")
    if duration is not None and duration <= 0:
        raise InvalidInput(f"duration must be > 0 s, got {duration}")
    if start >= total:
        raise InvalidInput(f"{path}: the audio lasts {total:.3f} s; start {start:.3f} s is past its end")


def _audio_cmd(path: Path, rate: int, channels: int, start: float, duration: float | None) -> list[str]:
    in_kw: dict[str, float] = {}
    if start > 0:
        in_kw["ss"] = start
    if duration is not None:
        in_kw["t"] = duration
    stream = ffmpeg.input(ff_url(path), **in_kw)["a:0"]
    out = stream.output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, ar=rate)
    return ffmpeg_argv(out)


def decode_audio(
    path: str | Path, rate: int = 16000, *, start: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """Decode the first audio stream of `path` to float32 mono at `rate` Hz, shape (n,), in [-1, 1].

    Channels are averaged (not summed), so identical stereo channels decode to the same level.
    `start`/`duration` in seconds select a range; the result is shorter than round(duration*rate)
    samples only if the audio ends first. No audio stream -> InvalidInput.
    """
    if rate <= 0:
        raise InvalidInput(f"sample rate must be > 0 Hz, got {rate}")
    info = probe(path, require_audio=True)
    p = Path(path)
    _check_range(p, start, duration, info.duration)
    channels = max(1, info.audio_channels)
    proc = FfmpegProcess(_audio_cmd(p, int(rate), channels, start, duration))
    data = proc.stdout.read()
    rc, err = proc.finish()
    if rc != 0:
        raise InvalidInput(f"ffmpeg cannot decode the audio of {p}: {short_reason(err, p)}")
    usable = len(data) - len(data) % (4 * channels)
    samples = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0].copy()
    np.clip(mono, -1.0, 1.0, out=mono)
    return mono


def _as_channels(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1:
        raise InvalidInput(f"audio samples must have shape (n,) or (n, channels), got {a.shape}")
    return a


def _float_wav_bytes(a: np.ndarray, rate: int) -> bytes:
    """RIFF/WAVE header for IEEE-float PCM (format 3, with the `fact` chunk non-PCM WAV requires)."""
    n, ch = a.shape
    data_len = n * ch * 4
    fmt = struct.pack("<HHIIHHH", 3, ch, rate, rate * ch * 4, ch * 4, 32, 0)
    fact = struct.pack("<I", n)
    riff_len = 4 + (8 + len(fmt)) + (8 + len(fact)) + (8 + data_len)
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", riff_len),
            b"WAVE",
            b"fmt ",
            struct.pack("<I", len(fmt)),
            fmt,
            b"fact",
            struct.pack("<I", len(fact)),
            fact,
            b"data",
            struct.pack("<I", data_len),
        ]
    )


def write_wav(path: str | Path, samples: np.ndarray, rate: int, *, pcm16: bool = False) -> Path:
    """Write `samples` (n,) or (n, channels), values in [-1, 1], as a WAV file at `rate` Hz.

    Default: 32-bit float WAV (lossless for our float32 audio). `pcm16=True`: 16-bit integer PCM
    (clipped to [-1, 1], rounded), for tools that only read integer WAV. Returns the path.
    """
    if rate <= 0:
        raise InvalidInput(f"sample rate must be > 0 Hz, got {rate}")
    a = _as_channels(samples)
    if a.shape[0] * a.shape[1] * 4 >= 2**32 - 64:
        raise InvalidInput("audio too long for a WAV file (over 4 GiB)")
    p = Path(path)
    if not np.issubdtype(a.dtype, np.number):
        raise InvalidInput(f"audio samples must be numeric, got dtype {a.dtype}")
    if pcm16:
        ints = np.round(np.clip(a.astype(np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
        with wave.open(str(p), "wb") as w:
            w.setnchannels(a.shape[1])
            w.setsampwidth(2)
            w.setframerate(int(rate))
            w.writeframes(ints.tobytes())
        return p
    data = np.ascontiguousarray(a, dtype="<f4")
    with open(p, "wb") as f:
        f.write(_float_wav_bytes(data, int(rate)))
        f.write(data.tobytes())
    return p
