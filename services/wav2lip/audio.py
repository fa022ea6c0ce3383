"""Wav2Lip's audio front end: the 16 kHz wav -> normalised mel spectrogram -> per-frame mel chunks.

Semantics follow upstream Rudrabha/Wav2Lip @ 5c90fa9b (`audio.py`, `hparams.py`, `inference.py`),
which pins librosa 0.7.0. Re-implemented here with numpy/scipy (no librosa at run time):

1. pre-emphasis `y[n] = x[n] - 0.97 x[n-1]` (scipy `lfilter([1, -0.97], [1], x)`, float64);
2. STFT: n_fft 800, hop 200, periodic Hann window of 800, centred frames with **reflect** padding of
   400 samples each side (librosa 0.7's `pad_mode`); each frame's rfft is computed in float64 and stored
   as **complex64** (librosa's `dtype` default), so the magnitudes are float32;
3. mel: 80 Slaney-scale, Slaney-normalised triangles from 55 to 7600 Hz, built as librosa does (float32
   weights, the area normalisation applied in float64 and rounded back to float32), applied with a
   float32 matrix product;
4. `20 log10(max(1e-5, mel)) - 20` dB, then symmetric normalisation to [-4, 4] with clipping.

The result is float64, shape (80, 1 + len(wav) // 200).

Edge cases: NaN / inf samples are refused (upstream raises "Mel contains nan" after the fact); an
all-silent input is valid and gives the floor value -4.0 everywhere (20 log10(1e-5) - 20 = -120 dB,
below the -100 dB floor, clipped); a wav shorter than one 16-column chunk (< 3000 samples, 0.19 s)
is refused because no mel chunk can be cut from it.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal
from scipy.io import wavfile

from lihq.errors import InvalidInput


@dataclass(frozen=True)
class MelParams:
    """Upstream `hparams.py` values that shape the mel (the only ones inference uses)."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0


HPARAMS = MelParams()
MEL_STEP = 16  # mel columns per network input (0.2 s)
MEL_FPS = 80.0  # mel columns per second at hop 200 / 16 kHz


# ----------------------------------------------------------------------------- mel filterbank


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mel = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    high = hz >= min_log_hz
    mel[high] = min_log_mel + np.log(hz[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    hz = f_sp * mel
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    high = mel >= min_log_mel
    hz[high] = min_log_hz * np.exp(logstep * (mel[high] - min_log_mel))
    return hz


@functools.lru_cache(maxsize=4)
def mel_basis(p: MelParams = HPARAMS) -> np.ndarray:
    """(num_mels, n_fft // 2 + 1) float32 triangular filters, Slaney scale and area normalisation."""
    if p.fmax > p.sample_rate // 2:
        raise InvalidInput(f"fmax {p.fmax} Hz is above the Nyquist frequency of {p.sample_rate} Hz")
    n_bins = p.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, p.sample_rate / 2.0, n_bins)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array([p.fmin]))[0], _hz_to_mel(np.array([p.fmax]))[0], p.num_mels + 2)
    )
    widths = np.diff(edges)
    offsets = edges[:, None] - fft_hz[None, :]
    weights = np.zeros((p.num_mels, n_bins), dtype=np.float32)
    for m in range(p.num_mels):
        rising = -offsets[m] / widths[m]
        falling = offsets[m + 2] / widths[m + 1]
        weights[m] = np.maximum(0.0, np.minimum(rising, falling))
    area = 2.0 / (edges[2 : p.num_mels + 2] - edges[: p.num_mels])
    weights *= area[:, None]  # float64 product, rounded back into float32 (as librosa)
    weights.setflags(write=False)
    return weights


# ----------------------------------------------------------------------------- spectrogram


def check_wav(wav: np.ndarray, p: MelParams = HPARAMS) -> np.ndarray:
    """The wav as a 1-D float array; InvalidInput for NaN/inf samples, wrong shape or too short."""
    wav = np.asarray(wav)
    if wav.ndim != 1 or not np.issubdtype(wav.dtype, np.floating):
        raise InvalidInput(f"audio must be a 1-D float array of samples, got {wav.dtype} {wav.shape}")
    bad = np.flatnonzero(~np.isfinite(wav))
    if bad.size:
        raise InvalidInput(
            f"the audio has {bad.size} NaN/inf samples (first at {bad[0] / p.sample_rate:.3f} s); "
            "re-export it (TTS voices sometimes write NaN) or add tiny noise and try again"
        )
    min_samples = (MEL_STEP - 1) * p.hop_size
    if wav.size < min_samples:
        raise InvalidInput(
            f"the audio has {wav.size} samples ({wav.size / p.sample_rate:.3f} s); Wav2Lip needs at least "
            f"{min_samples} ({min_samples / p.sample_rate:.3f} s at {p.sample_rate} Hz) for one mel chunk"
        )
    return wav


def stft_magnitude(y: np.ndarray, p: MelParams = HPARAMS) -> np.ndarray:
    """|STFT| (n_fft // 2 + 1, 1 + len(y) // hop) float32: centred, reflect-padded, periodic Hann."""
    pad = p.n_fft // 2
    if y.size <= pad:
        raise InvalidInput(f"{y.size} samples is too short to reflect-pad by {pad}")
    padded = np.pad(np.asarray(y, dtype=np.float64), pad, mode="reflect")
    window = signal.get_window("hann", p.win_size, fftbins=True)
    if p.win_size < p.n_fft:  # centre the window in the frame, as librosa does
        lpad = (p.n_fft - p.win_size) // 2
        window = np.pad(window, (lpad, p.n_fft - p.win_size - lpad))
    n_frames = 1 + (padded.size - p.n_fft) // p.hop_size
    frames = np.lib.stride_tricks.sliding_window_view(padded, p.n_fft)[:: p.hop_size][:n_frames]
    spec = np.fft.rfft(frames * window, axis=-1).astype(np.complex64)
    return np.abs(spec).T


def _amp_to_db(x: np.ndarray, p: MelParams) -> np.ndarray:
    floor = np.exp(p.min_level_db / 20 * np.log(10))  # a float64 scalar: the result is float64
    return 20 * np.log10(np.maximum(floor, x))


def _normalize(s: np.ndarray, p: MelParams) -> np.ndarray:
    m = p.max_abs_value
    return np.clip((2 * m) * ((s - p.min_level_db) / (-p.min_level_db)) - m, -m, m)


def melspectrogram(wav: np.ndarray, p: MelParams = HPARAMS) -> np.ndarray:
    """Normalised mel spectrogram (num_mels, 1 + len(wav) // hop) float64 in [-4, 4].

    `wav`: mono float samples at `p.sample_rate` (float32 as librosa loads them, values in [-1, 1]).
    """
    wav = check_wav(wav, p)
    emphasised = signal.lfilter([1.0, -p.preemphasis], [1.0], wav)
    mag = stft_magnitude(emphasised, p)
    mel = mel_basis(p) @ mag  # float32 @ float32 -> float32, as np.dot in upstream
    return _normalize(_amp_to_db(mel, p) - p.ref_level_db, p)


# ----------------------------------------------------------------------------- chunks


def mel_chunk_starts(n_mel_frames: int, fps: float, step: int = MEL_STEP) -> np.ndarray:
    """Start column of the mel chunk of every video frame, as upstream `inference.py` cuts them.

    Frame i starts at `int(i * 80 / fps)`; the first frame whose chunk would run past the end gets
    the last full chunk (`n_mel_frames - step`) instead and ends the list, so the last start may
    repeat the one before it. Returns int64 (n_chunks,). Upstream makes as many video frames as chunks.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InvalidInput(f"fps must be a finite number > 0, got {fps!r}")
    if n_mel_frames < step:
        raise InvalidInput(f"the mel has {n_mel_frames} columns; at least {step} are needed for one chunk")
    mult = MEL_FPS / fps
    starts: list[int] = []
    i = 0
    while True:
        s = int(i * mult)
        if s + step > n_mel_frames:
            starts.append(n_mel_frames - step)
            return np.asarray(starts, dtype=np.int64)
        starts.append(s)
        i += 1


def mel_chunks(mel: np.ndarray, starts: np.ndarray, step: int = MEL_STEP) -> np.ndarray:
    """Network audio input (n, 1, num_mels, step) float32: `float32(mel[:, s : s + step])` per start."""
    mel = np.asarray(mel)
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size and (starts.min() < 0 or starts.max() + step > mel.shape[1]):
        raise InvalidInput(f"mel chunk starts must lie in [0, {mel.shape[1] - step}]")
    cols = starts[:, None] + np.arange(step)[None, :]
    out = mel[:, cols].transpose(1, 0, 2)  # (n, num_mels, step)
    return np.ascontiguousarray(out[:, None], dtype=np.float32)


# ----------------------------------------------------------------------------- wav files


def read_wav(source: str | Path | bytes, p: MelParams = HPARAMS) -> np.ndarray:
    """Mono float32 samples of a WAV at `p.sample_rate` (int16 / 32768 as librosa; channels averaged).

    PCM 16/32-bit and IEEE float WAVs are accepted; another sample rate -> InvalidInput (the media
    stage's ExtractAudio makes 16 kHz copies).
    """
    try:
        rate, data = wavfile.read(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInput(f"not a readable WAV file: {exc}") from exc
    if rate != p.sample_rate:
        raise InvalidInput(f"the WAV is {rate} Hz; Wav2Lip needs {p.sample_rate} Hz (resample it first)")
    if data.dtype == np.int16:
        samples = data.astype(np.float32) / np.float32(32768.0)
    elif data.dtype == np.int32:
        samples = (data.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / np.float32(128.0)
    elif np.issubdtype(data.dtype, np.floating):
        samples = data.astype(np.float32, copy=False)
    else:
        raise InvalidInput(f"unsupported WAV sample type {data.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples)
