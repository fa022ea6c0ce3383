"""The espeak backend against the real espeak-ng binary: real speech, deterministic, rate/pitch/voices."""

from __future__ import annotations

import numpy as np
import pytest

from lihq.errors import FailedPrecondition, InvalidInput
from services.tts import audio
from services.tts.backends import SAMPLE_RATE
from services.tts.backends.espeak import EspeakBackend, build_catalog, parse_voice_table, wav_bytes_to_float

TABLE = """Pty Language       Age/Gender VoiceName          File                 Other Languages
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)
 5  en-us           --/F      us-mbrola-1        mb/mb-us1            (en 8)
 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)
 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping (zh-yue 5)(zh 8)
"""
VARIANTS = """Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  variant         --/F      Alicia             !v/Alicia
 5  variant         --/M      m3                 !v/m3
"""


@pytest.fixture(scope="module")
def espeak() -> EspeakBackend:
    return EspeakBackend()


def test_catalog_parsing_aliases_duplicates_and_variants():
    rows = parse_voice_table(TABLE)
    assert [r.language for r in rows] == ["en-gb", "en-us", "en-us", "yue", "yue"]
    cat = build_catalog(TABLE, VARIANTS)
    assert set(cat.voices) == {"en-gb", "en-us", "yue", "yue-latn-jyutping"}  # mbrola skipped
    assert cat.voices["yue-latn-jyutping"].file == "sit/yue-Latn-jyutping"
    assert cat.aliases == {"en": "en-gb", "zh-yue": "yue", "zh": "yue"}
    assert cat.find("en").id == "en-gb" and cat.find("xx") is None
    assert cat.variants == {"alicia": "Alicia", "m3": "m3"}


def test_renders_real_speech_at_24k(espeak):
    opts = espeak.resolve("", "", "", 0, 0, None)
    assert (opts.voice, opts.language) == ("en-us", "en-us")
    x = espeak.render("Hello there. This is a test of the speech stage.", opts)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 2.0 < x.size / SAMPLE_RATE < 6.0  # ~3 s of speech at 175 wpm
    assert audio.voiced_rms_db(x, SAMPLE_RATE) > -30.0  # loud enough to be speech, not noise
    rms = audio.frame_rms(x, SAMPLE_RATE)
    assert (rms > 0.01).mean() > 0.4  # voiced most of the time


def test_deterministic(espeak):
    opts = espeak.resolve("en-gb", "", "", 7, 0, None)
    a = espeak.render("The same words twice.", opts)
    b = espeak.render("The same words twice.", opts)
    assert np.array_equal(a, b)


def test_rate_pitch_and_variant_change_the_audio(espeak):
    text = "One two three four five six seven eight nine ten."
    base = espeak.render(text, espeak.resolve("en-us", "", "", 0, 0, None))
    fast = espeak.render(text, espeak.resolve("en-us", "", "", 0, 350, None))
    assert fast.size < 0.7 * base.size
    high = espeak.render(text, espeak.resolve("en-us", "", "", 0, 0, 90))
    assert high.size != base.size or not np.array_equal(high, base)
    female = espeak.render(text, espeak.resolve("en-us+f3", "", "", 0, 0, None))
    assert not np.array_equal(female[: base.size], base[: female.size])


def test_languages_and_text_on_stdin(espeak):
    de = espeak.resolve("", "de", "", 0, 0, None)
    assert de.voice == "de" and de.language == "de"
    x = espeak.render("-v xx --help Guten Tag", de)  # text that looks like options is just text
    assert x.size > SAMPLE_RATE // 2


@pytest.mark.parametrize(
    "voice, language, preset, rate, pitch, needle",
    [
        ("xx", "", "", 0, None, "no voice or language 'xx'"),
        ("en-us", "de", "", 0, None, "speaks 'en-us', not 'de'"),
        ("en-us+nope", "", "", 0, None, "unknown espeak variant"),
        ("", "", "fast", 0, None, "no presets"),
        ("", "", "", 20, None, "rate 20"),
        ("", "", "", 0, 100, "pitch 100"),
    ],
)
def test_resolve_rejects(espeak, voice, language, preset, rate, pitch, needle):
    with pytest.raises(InvalidInput, match=needle):
        espeak.resolve(voice, language, preset, 0, rate, pitch)


def test_voices_list_languages_and_variants(espeak):
    ids = {v.id for v in espeak.voices()}
    assert {"en-us", "de", "fr-fr", "+f3"} <= ids
    assert espeak.model_id().startswith("espeak-ng:1.")
    assert espeak.availability().available


def test_missing_binary_is_a_failed_precondition():
    be = EspeakBackend("espeak-ng-not-installed")
    assert not be.availability().available and "apt-get install espeak-ng" in be.availability().reason
    with pytest.raises(FailedPrecondition, match="not installed"):
        be.model_id()


def test_wav_stream_parsing():
    with pytest.raises(FailedPrecondition):
        wav_bytes_to_float(b"garbage")
