"""The mel front end: upstream vectors, librosa cross-check, chunk indexing, edge cases, mel objects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from lihq.errors import InvalidInput
from lihq.media import write_wav
from services.wav2lip import audio
from services.wav2lip.objects import MelObject
from tests.services.wav2lip.conftest import W2L_VECTORS, needs_reference


@needs_reference
def test_wav_and_mel_match_upstream_vectors() -> None:
    ref = np.load(W2L_VECTORS / "audio.npz")
    wav = audio.read_wav(W2L_VECTORS / "audio.wav")
    assert wav.dtype == np.float32 and np.array_equal(wav, ref["wav_f32"])
    mel = audio.melspectrogram(wav)
    assert mel.dtype == np.float64 and mel.shape == ref["mel_f64"].shape
    assert np.max(np.abs(mel - ref["mel_f64"])) <= 1e-6
    assert np.array_equal(audio.mel_chunk_starts(mel.shape[1], float(ref["fps"])), ref["chunk_starts"])


@needs_reference
def test_mel_index_cases() -> None:
    cases = json.loads((W2L_VECTORS / "preprocess_cases.json").read_text())["mel_index_cases"]
    assert len(cases) >= 10
    for c in cases:
        assert audio.mel_chunk_starts(c["mel_frames"], c["fps"]).tolist() == c["starts"], c["fps"]


def test_last_start_is_clamped_and_may_repeat() -> None:
    starts = audio.mel_chunk_starts(81, 50.0)
    assert starts[-1] == starts[-2] == 65  # int(41 * 1.6) = 65 fits, the next does not: clamped to 65
    assert audio.mel_chunk_starts(16, 25.0).tolist() == [0, 0]


def test_against_librosa_on_an_odd_length() -> None:
    librosa = pytest.importorskip("librosa")
    from scipy import signal

    rng = np.random.default_rng(3)
    wav = (rng.standard_normal(12_345) * 0.1).astype(np.float32)
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert np.array_equal(basis, audio.mel_basis())
    y = signal.lfilter([1, -0.97], [1], wav)
    ref = np.abs(
        librosa.stft(y=y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect", dtype=np.complex64)
    )
    assert np.array_equal(ref, audio.stft_magnitude(y))


def test_silence_gives_the_floor_everywhere() -> None:
    mel = audio.melspectrogram(np.zeros(8000, np.float32))
    assert mel.shape == (80, 41) and np.all(mel == -4.0)
    assert audio.mel_chunks(mel, audio.mel_chunk_starts(41, 25.0)).shape == (10, 1, 80, 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_refused(bad: float) -> None:
    wav = np.zeros(16000, np.float32)
    wav[4000] = bad
    with pytest.raises(InvalidInput, match=r"NaN/inf samples \(first at 0\.250 s\)"):
        audio.melspectrogram(wav)


def test_too_short_or_bad_shape() -> None:
    with pytest.raises(InvalidInput, match="at least 3000"):
        audio.melspectrogram(np.zeros(2999, np.float32))
    with pytest.raises(InvalidInput, match="1-D float"):
        audio.melspectrogram(np.zeros((2, 4000), np.float32))
    with pytest.raises(InvalidInput, match="fps"):
        audio.mel_chunk_starts(81, 0.0)


def test_mel_chunks_are_float32_slices() -> None:
    mel = np.arange(80 * 40, dtype=np.float64).reshape(80, 40) / 7
    chunks = audio.mel_chunks(mel, np.array([0, 24]))
    assert chunks.shape == (2, 1, 80, 16) and chunks.dtype == np.float32
    assert np.array_equal(chunks[1, 0], mel[:, 24:40].astype(np.float32))
    with pytest.raises(InvalidInput):
        audio.mel_chunks(mel, np.array([25]))


def test_read_wav_formats(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    write_wav(tmp_path / "f.wav", x, 16000)  # IEEE float WAV, as the media stage writes
    assert np.array_equal(audio.read_wav(tmp_path / "f.wav"), x)
    stereo = np.stack([np.full(4000, 1000, np.int16), np.full(4000, 3000, np.int16)], axis=1)
    wavfile.write(tmp_path / "s.wav", 16000, stereo)
    assert np.allclose(audio.read_wav((tmp_path / "s.wav").read_bytes()), 2000 / 32768)
    wavfile.write(tmp_path / "r.wav", 44100, x)
    with pytest.raises(InvalidInput, match="44100 Hz"):
        audio.read_wav(tmp_path / "r.wav")
    with pytest.raises(InvalidInput, match="not a readable WAV"):
        audio.read_wav(b"RIFF nope")


def test_mel_object_roundtrip_and_tail_frames() -> None:
    mel = audio.melspectrogram(np.zeros(16000, np.float32)).astype(np.float32)
    obj = MelObject(mel=mel, starts=audio.mel_chunk_starts(mel.shape[1], 25.0), fps=25.0)
    again = MelObject.from_bytes(obj.to_bytes())
    assert np.array_equal(again.mel, mel) and np.array_equal(again.starts, obj.starts) and again.fps == 25.0
    tail = obj.starts_for(20, 5)  # 22 chunks: frames 22..24 reuse the last one
    assert tail.tolist() == [64, 65, 65, 65, 65]
    with pytest.raises(InvalidInput, match="mel object"):
        MelObject.from_bytes(b"not an npz")
