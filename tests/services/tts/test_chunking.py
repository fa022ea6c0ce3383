"""Text chunking and the sample-level helpers (trim, join, loudness, WAV reading): pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from lihq import media
from services.tts import audio
from services.tts.backends import ChunkPolicy
from services.tts.text_split import Pauses, chunk_text, normalize_text, speakable, split_long, split_sentences

RATE = 24000


def test_sentences_respect_abbreviations_and_initials():
    text = "Dr. Smith met J. R. Tolkien at 5 p.m. on Main St. today. Was it fun? Yes! “Quite so.” Next."
    assert split_sentences(text) == [
        "Dr. Smith met J. R. Tolkien at 5 p.m. on Main St. today.",
        "Was it fun?",
        "Yes!",
        "“Quite so.”",
        "Next.",
    ]


def test_cjk_full_stops_split_without_spaces():
    assert split_sentences("你好。今天天气很好！是吗？") == ["你好。", "今天天气很好！", "是吗？"]


def test_normalize_keeps_paragraphs_and_collapses_spaces():
    assert normalize_text("  a   b \n c\n\n\n  d\te  ") == "a b c\n\nd e"


def test_long_sentence_is_cut_at_clauses_then_spaces_within_max():
    sentence = "one two three, " * 20 + "and " + "word " * 80 + "end."
    parts = split_long(sentence, 100)
    assert all(0 < len(p) <= 100 for p in parts)
    assert " ".join(parts).split() == sentence.split()  # nothing lost, order kept
    assert parts[0].endswith(",")  # the first cut is at a clause boundary


def test_chunks_pack_sentences_and_carry_pauses():
    policy = ChunkPolicy(target_chars=60, max_chars=80)
    text = "First sentence here. Second one is here. Third is a bit longer than the others.\n\nNew paragraph."
    chunks = chunk_text(text, policy, Pauses(paragraph_s=0.6, sentence_s=0.3, clause_s=0.15))
    assert [c.text for c in chunks] == [
        "First sentence here. Second one is here.",
        "Third is a bit longer than the others.",
        "New paragraph.",
    ]
    assert [c.pause_after_s for c in chunks] == [0.3, 0.6, 0.0]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_clause_pieces_get_short_pauses_and_are_not_packed():
    policy = ChunkPolicy(target_chars=300, max_chars=40)
    chunks = chunk_text(
        "Short. " + "alpha beta gamma, delta epsilon zeta, eta theta iota kappa lambda.", policy
    )
    assert chunks[0].text == "Short."
    assert all(len(c.text) <= 40 for c in chunks)
    assert [c.pause_after_s for c in chunks[1:-1]] == [Pauses().clause_s] * (len(chunks) - 2)


def test_chunking_is_deterministic_and_drops_punctuation_only_pieces():
    policy = ChunkPolicy(200, 300)
    text = "Hello. ... !!! World."
    assert chunk_text(text, policy) == chunk_text(text, policy)
    assert [c.text for c in chunk_text(text, policy)] == ["Hello. World."]
    assert not speakable("... !!! —") and speakable("x")


def test_trim_silence_keeps_a_margin():
    tone = (0.5 * np.sin(np.linspace(0, 2 * np.pi * 220, RATE // 2))).astype(np.float32)
    x = np.concatenate([np.zeros(RATE), tone, np.zeros(RATE)]).astype(np.float32)
    y = audio.trim_silence(x, RATE, keep_s=0.03)
    assert abs(y.size - (tone.size + 2 * int(0.03 * RATE))) <= int(0.02 * RATE)
    assert audio.trim_silence(np.zeros(RATE, np.float32), RATE).size == 0


def test_join_places_chunks_after_pauses():
    a, b = np.ones(2400, np.float32) * 0.1, np.ones(4800, np.float32) * 0.2
    out, places = audio.join([a, b], [0.5, 0.0], RATE)
    assert out.size == 2400 + 12000 + 4800
    assert places[0] == audio.Placement(0.0, 0.1) and places[1] == audio.Placement(0.6, 0.2)
    assert np.all(out[2400:14400] == 0)


def test_normalize_loudness_hits_target_without_clipping():
    rng = np.random.default_rng(0)
    speech = (0.01 * rng.standard_normal(RATE)).astype(np.float32)
    y = audio.normalize_loudness(speech, RATE, target_db=-20.0, peak_db=-1.0)
    assert audio.voiced_rms_db(y, RATE) == pytest.approx(-20.0, abs=0.2)
    spiky = speech.copy()
    spiky[100] = 0.9  # a peak that would clip at -20 dBFS RMS gain: the limiter wins
    z = audio.normalize_loudness(spiky, RATE)
    assert np.abs(z).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert np.array_equal(audio.normalize_loudness(np.zeros(10, np.float32), RATE), np.zeros(10))


def test_leading_silence():
    y = audio.lead_with_silence(np.ones(10, np.float32), RATE, 0.4)
    assert y.size == 9610 and not y[:9600].any()


def test_read_wav_round_trips_float_and_pcm16(tmp_path):
    x = (0.5 * np.sin(np.linspace(0, 60, 2400))).astype(np.float32)
    f = media.write_wav(tmp_path / "f.wav", x, RATE)
    p = media.write_wav(tmp_path / "p.wav", x, 16000, pcm16=True)
    y, r = audio.read_wav(f.read_bytes())
    assert r == RATE and np.array_equal(x, y)
    z, r16 = audio.read_wav(p.read_bytes())
    assert r16 == 16000 and np.abs(z - x).max() < 1e-4
    with pytest.raises(ValueError):
        audio.read_wav(b"not a wav")
