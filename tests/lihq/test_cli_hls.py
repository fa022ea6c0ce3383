"""`lihq render --hls DIR` (issue #18): a file given as DIR is one error line before any work; the summary
says when the first HLS segment was playable. (The copying itself: tests/orchestrator/test_hls.py.)"""

from __future__ import annotations

from types import SimpleNamespace

from click.testing import CliRunner

from lihq_cli.main import cli
from lihq_cli.render import summary_lines


def test_hls_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    face, audio, taken = (tmp_path / n for n in ("face.png", "speech.wav", "taken"))
    for p in (face, audio, taken):
        p.write_bytes(b"not really media")
    args = ["render", "--face", str(face), "--audio", str(audio), "-o", str(tmp_path / "o.mp4")]
    r = CliRunner().invoke(cli, [*args, "--hls", str(taken)], env={"LIHQ_HOME": str(tmp_path / "home")})
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code != 0 and len(lines) == 1, r.output
    assert lines[0].startswith("error: ") and "--hls" in lines[0] and "directory" in lines[0]
    assert taken.read_bytes() == b"not really media" and not (tmp_path / "home" / "store").exists()


def test_summary_gives_the_first_playable_time():
    rec = SimpleNamespace(first_playable_s=4.94)
    [_, time_line] = summary_lines(rec, {"hls": 4.9}, 40.0, 60.0)
    assert time_line.endswith("; first HLS segment playable 4.9 s after submit)")
    [_, time_line] = summary_lines(SimpleNamespace(first_playable_s=0.0), {}, 40.0, 60.0)
    assert time_line.endswith("s rendering)")
