"""`lihq render --keep-lips / --motion / --offset random` (issue #15): parsing, one-line errors naming the
option, and the summary line that tells how to repeat a random offset."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lihq_cli.main import cli
from lihq_cli.render import offset_line
from orchestrator.spec import RenderSpec


def _run(tmp_path, *extra: str):
    face, audio, ref = (tmp_path / n for n in ("face.png", "speech.wav", "ref.mp4"))
    for p in (face, audio, ref):
        p.write_bytes(b"not really media")
    args = ["render", "--face", str(face), "--audio", str(audio), "-o", str(tmp_path / "o.mp4"), *extra]
    args = [str(ref) if a == "REF" else a for a in args]
    r = CliRunner().invoke(cli, args, env={"LIHQ_HOME": str(tmp_path / "home")})
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    return r, lines


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--keep-lips"], "keep_lips needs a reference video"),
        (["--offset", "random"], "reference_offset_random (--offset random) needs a reference video"),
        (["--motion", "calm", "--ref-video", "REF"], "motion 'calm' shapes procedural motion only"),
        (["--motion", "wild"], "'wild' is not one of 'calm', 'lively', 'nodding', 'still', 'sway'"),
        (["--offset", "soon"], "'soon': give seconds (e.g. 3.5) or 'random'"),
        (["--offset", "-1"], "must be a finite number of seconds >= 0"),
    ],
)
def test_bad_combinations_are_one_error_line_naming_the_option(tmp_path, extra, needle):
    r, lines = _run(tmp_path, *extra)
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert not (tmp_path / "home" / "weights-synthetic").exists()  # refused before any work


def test_the_summary_says_how_to_repeat_a_random_offset():
    spec = RenderSpec(face_key="f", audio_key="a", reference_video_key="r", reference_offset_s=2.5, seed=7)
    assert offset_line(spec).endswith("repeat it with --offset 2.500 --seed 7")
