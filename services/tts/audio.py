"""Sample-level helpers of the speech stage: trim, join with pauses, leading silence, loudness.

All audio here is float32 mono in [-1, 1] at one rate (24 kHz in the service). Levels are in dBFS
(0 dBFS = full scale). Loudness is a gated RMS over 50 ms frames (frames within 40 dB of the
loudest count as voiced), a simple and deterministic stand-in for EBU R128 that suits speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FRAME_S = 0.05
_GATE_DB = 40.0  # frames this far below the loudest frame are pauses, not speech


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def amp_to_db(amp: float) -> float:
    return float(20.0 * np.log10(max(amp, 1e-12)))


def frame_rms(samples: np.ndarray, rate: int, frame_s: float = _FRAME_S) -> np.ndarray:
    """RMS of consecutive frames of `frame_s` (the tail frame padded with zeros); shape (n_frames,)."""
    n = max(1, int(round(rate * frame_s)))
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return np.zeros(0)
    pad = (-x.size) % n
    frames = np.pad(x, (0, pad)).reshape(-1, n)
    return np.sqrt(np.mean(frames**2, axis=1))


def voiced_rms_db(samples: np.ndarray, rate: int) -> float:
    """Gated RMS level in dBFS of the voiced frames (-inf-ish, -240, for silence)."""
    rms = frame_rms(samples, rate)
    if rms.size == 0 or rms.max() <= 1e-9:
        return -240.0
    voiced = rms[rms >= rms.max() * db_to_amp(-_GATE_DB)]
    return amp_to_db(float(np.sqrt(np.mean(voiced**2))))


def trim_silence(
    samples: np.ndarray, rate: int, threshold_db: float = -50.0, keep_s: float = 0.03
) -> np.ndarray:
    """Drop leading/trailing audio quieter than `threshold_db` (10 ms frames), keeping `keep_s` margin."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    rms = frame_rms(x, rate, 0.01)
    loud = np.flatnonzero(rms >= db_to_amp(threshold_db))
    if loud.size == 0:
        return x[:0]
    hop = max(1, int(round(rate * 0.01)))
    keep = int(round(keep_s * rate))
    start = max(0, loud[0] * hop - keep)
    end = min(x.size, (loud[-1] + 1) * hop + keep)
    return x[start:end]


@dataclass(frozen=True)
class Placement:
    offset_s: float
    duration_s: float


def join(chunks: list[np.ndarray], pauses_s: list[float], rate: int) -> tuple[np.ndarray, list[Placement]]:
    """Concatenate chunks in order with `pauses_s[i]` of silence after chunk i; where each one lands."""
    parts: list[np.ndarray] = []
    placements: list[Placement] = []
    pos = 0
    for audio, pause in zip(chunks, pauses_s, strict=True):
        a = np.asarray(audio, dtype=np.float32).reshape(-1)
        placements.append(Placement(pos / rate, a.size / rate))
        gap = np.zeros(int(round(max(0.0, pause) * rate)), dtype=np.float32)
        parts += [a, gap]
        pos += a.size + gap.size
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return out, placements


def lead_with_silence(samples: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    pad = np.zeros(int(round(max(0.0, seconds) * rate)), dtype=np.float32)
    return np.concatenate([pad, np.asarray(samples, dtype=np.float32).reshape(-1)])


def normalize_loudness(
    samples: np.ndarray, rate: int, target_db: float = -20.0, peak_db: float = -1.0
) -> np.ndarray:
    """Scale to `target_db` gated RMS, limited so that no sample exceeds `peak_db` (no clipping)."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    level = voiced_rms_db(x, rate)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if level <= -200.0 or peak <= 0.0:
        return x.copy()
    gain = db_to_amp(target_db - level)
    gain = min(gain, db_to_amp(peak_db) / peak)
    return (x * np.float32(gain)).astype(np.float32)


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples, rate) of a WAV in memory: IEEE float32 (ours) or 16-bit PCM."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, fmt, channels, rate, bits = 12, 0, 1, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            fmt = int.from_bytes(data[pos + 8 : pos + 10], "little")
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(data[pos + 22 : pos + 24], "little")
        elif cid == b"data":
            body = data[pos + 8 : pos + 8 + size]
            if (fmt, bits) == (3, 32):
                x = np.frombuffer(body[: len(body) - len(body) % (4 * channels)], dtype="<f4")
            elif (fmt, bits) == (1, 16):
                pcm = np.frombuffer(body[: len(body) - len(body) % (2 * channels)], dtype="<i2")
                x = pcm.astype(np.float32) / 32768.0
            else:
                raise ValueError(f"unsupported WAV format {fmt} with {bits}-bit samples")
            return x.reshape(-1, channels).mean(axis=1).astype(np.float32), rate
        pos += 8 + size + (size & 1)
    raise ValueError("WAV without a data chunk")
