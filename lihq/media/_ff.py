"""Shared plumbing for the media modules: input-file checks and running ffmpeg as a subprocess.

ffmpeg-python builds the command lines; this module owns the process: it drains stderr on a thread
(so a chatty ffmpeg can never block on a full pipe while we read stdout or write stdin) and turns a
failed run into a short, readable reason.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from lihq.errors import InvalidInput

_REASON_MAX = 240


def check_file(path: str | Path) -> Path:
    """Return `path` as a Path if it names a non-empty regular file; InvalidInput otherwise."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p}: file not found")
    if not p.is_file():
        raise InvalidInput(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InvalidInput(f"{p} is empty (0 bytes)")
    return p


def ff_url(path: Path) -> str:
    """An ffmpeg input/output URL for a local file: `file:` keeps names with ':' from being protocols."""
    return "file:" + str(path.resolve())


def ffmpeg_argv(stream: Any) -> list[str]:
    """The argv of an ffmpeg-python output node, with our global options placed first (quiet, no stdin)."""
    compiled = stream.compile()
    return [compiled[0], "-nostdin", "-hide_banner", "-v", "error", *compiled[1:]]


def rational(value: float) -> str:
    """A float rate as an exact-enough "num/den" string for ffmpeg (29.97 -> "2997/100")."""
    f = Fraction(value).limit_denominator(100_000)
    return f"{f.numerator}/{f.denominator}"


def short_reason(stderr: str | bytes | None, path: Path | None = None) -> str:
    """Condense ffmpeg/ffprobe stderr into one line: the informative messages, without the file name."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    out: list[str] = []
    for ln in lines[-4:]:
        if ln.startswith("[") and "] " in ln:  # "[mov,mp4 @ 0x..] moov atom not found"
            ln = ln.split("] ", 1)[1]
        if path is not None:
            for prefix in (ff_url(path), str(path.resolve()), str(path)):
                if ln.startswith(prefix + ": "):
                    ln = ln[len(prefix) + 2 :]
        if ln not in out:
            out.append(ln)
    reason = "; ".join(out) or "unknown error"
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 3] + "..."


class FfmpegProcess:
    """A running ffmpeg with stdout and/or stdin piped and stderr collected in the background."""

    def __init__(self, args: Sequence[str], *, stdin: bool = False, stdout: bool = True) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._err = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read(65536), b""):  # type: ignore[union-attr]
            self._err += chunk

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def finish(self, timeout: float | None = None) -> tuple[int, str]:
        """Close our pipe ends, wait for exit; return (returncode, stderr text)."""
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except BrokenPipeError:
                    pass
        rc = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=5)
        return rc, self._err.decode("utf-8", "replace")

    def kill(self) -> None:
        """Stop ffmpeg early (we have what we need, or the caller gave up)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish(timeout=10)


def read_exact(stream: IO[bytes], buf: memoryview) -> int:
    """Fill `buf` from `stream`; return the bytes read (less than len(buf) only at end of stream)."""
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])  # type: ignore[attr-defined]
        if not n:
            break
        got += n
    return got
