"""Test media the tests make themselves: ffmpeg lavfi sources and espeak-ng speech."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def lavfi_video(
    path: Path, seconds: float = 5.0, size: str = "320x240", rate: int = 30, audio: bool = False
) -> Path:
    cmd = [
        "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    run(cmd)
    return path


def lavfi_image(path: Path, size: str = "200x160", color: str = "red") -> Path:
    run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"color=c={color}:size={size}:d=0.04",
            "-frames:v",
            "1",
            str(path),
        ]
    )
    return path


def espeak_wav(
    path: Path, text: str = "Hello there. This is a test of the speech stage.", wpm: int = 175
) -> Path:
    run(["espeak-ng", "-s", str(wpm), "-w", str(path), text])
    return path
