"""`lihq tts`: speaks on a machine with no weights (espeak), in-process; one-line errors.

The command is mounted here on a `LihqGroup`, as `lihq_cli.main` mounts it, so errors print the way
users see them.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lihq_cli.main import LihqGroup
from lihq_cli.tts import tts
from services.tts import audio


@pytest.fixture
def run(tmp_path):
    group = LihqGroup("lihq")
    group.add_command(tts)
    env = {"LIHQ_HOME": str(tmp_path / "home"), "LIHQ_WEIGHTS_DIR": str(tmp_path / "no-weights")}

    def invoke(*args: str):
        return CliRunner().invoke(group, ["tts", *args], env=env)

    return invoke


def test_speaks_with_no_weights(run, tmp_path):
    out = tmp_path / "hello.wav"
    r = run(
        "Hello there.", "-o", str(out), "--manifest", str(tmp_path / "m.json"), "--leading-silence", "0.4"
    )
    assert r.exit_code == 0, r.output
    assert "espeak" in r.output and "lihq weights fetch tortoise" in r.output  # says why espeak
    samples, rate = audio.read_wav(out.read_bytes())
    assert rate == 24000 and 0.9 < samples.size / rate < 3.0
    assert not samples[:9600].any() and audio.voiced_rms_db(samples, rate) > -30
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["backend"] == "espeak" and m["chunks"][0]["offset_s"] == pytest.approx(0.4)


def test_options_and_pcm16(run, tmp_path):
    out = tmp_path / "sub" / "fr.wav"
    r = run(
        "Bonjour tout le monde.",
        "-o",
        str(out),
        "--language",
        "fr",
        "--rate",
        "220",
        "--pitch",
        "70",
        "--pcm16",
    )
    assert r.exit_code == 0, r.output
    assert "voice fr-fr" in r.output
    assert out.read_bytes()[20:22] == b"\x01\x00"  # PCM


def test_text_file(run, tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("From a file. Two sentences.", encoding="utf-8")
    r = run("-f", str(src), "-o", str(tmp_path / "f.wav"))
    assert r.exit_code == 0, r.output


def test_list_voices(run):
    r = run("--list-voices", "--backend", "espeak", "--language", "de")
    assert r.exit_code == 0 and "# espeak: available" in r.output
    assert "\nde\t" in r.output and "\nen-us\t" not in r.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["", "-o", "x.wav"], "text is empty"),
        (["Hi"], "give an output file"),
        (["Hi", "-o", "x.mp3"], "only .wav"),
        (["Hi", "-o", "x.wav", "--language", "xx"], "no voice or language 'xx'"),
        (["Hi", "-o", "x.wav", "--backend", "tortoise"], "lihq weights fetch tortoise"),
        (["Hi", "-o", "x.wav", "--backend", "bark"], "lihq weights fetch bark"),
        (["Hi", "-o", "x.wav", "--preset", "fast"], "no presets"),
        (["Hi", "-o", "x.wav", "--clip", "none.wav"], "no such file"),
        ([], "give the text to speak"),
    ],
)
def test_bad_input_is_one_line(run, tmp_path, args, needle):
    args = [str(tmp_path / a) if a.endswith((".wav", ".mp3")) and a != "" else a for a in args]
    r = run(*args)
    assert r.exit_code in (1, 2)
    assert r.output.startswith("error: ") and needle in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output
