"""The render's HLS EVENT playlist (issue #18; names in orchestrator/README.md "HLS").

The plan's `hls/<k>` tasks make one MPEG-TS segment per plan segment, written by the media stage as
`renders/<id>/hls/seg_<k>.ts`. Segments finish out of order (the scheduler runs several at once); the
playlist lists the contiguous prefix of finished ones, so a player never meets a hole. `Playlist` is
the pure text; `PlaylistPublisher` rewrites `renders/<id>/hls/index.m3u8` as the prefix grows: O(1)
work per segment (the new lines are appended to the kept text), one store write in a worker thread,
writes coalesced (while one is in flight, later segments wait and go in the next) and never
reordered, and `#EXT-X-ENDLIST` only by `end()`, which the orchestrator calls when the render succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from lihq.media.video import frame_count
from orchestrator.spec import FPS

log = logging.getLogger("lihq.orchestrator")
PLAYLIST_NAME = "index.m3u8"
PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
VERSION = 3  # floating-point #EXTINF


def segment_name(k: int) -> str:
    return f"seg_{k:05d}.ts"


def playlist_key(render_id: str) -> str:
    return f"renders/{render_id}/hls/{PLAYLIST_NAME}"


def segment_duration(start: int, end: int, duration_s: float, fps: float = FPS) -> float:
    """What plan segment [start, end) (frames at `fps`, the plan's rate) plays for: whole frames up to the render's end
    (the media stage's rule: frame_count(end) - frame_count(start), half up)."""
    end_frame = min(end, frame_count(duration_s, fps))
    return max(1, end_frame - start) / fps


class Playlist:
    """An EVENT playlist of `n` segments: `add(k, seconds)` in any order; the text lists 0..m-1, the
    longest run finished from segment 0."""

    def __init__(self, n: int, target_s: float) -> None:
        self.n = n
        self.target = max(1, math.ceil(target_s - 1e-6))
        self.listed = 0  # segments in the text
        self._waiting: dict[int, float] = {}  # finished, after a hole
        self._body: list[str] = []

    def add(self, k: int, duration_s: float) -> bool:
        """Record segment k; True when the listed prefix grew (the text changed)."""
        if not 0 <= k < self.n:
            raise ValueError(f"segment {k} outside 0..{self.n - 1}")
        if k < self.listed or k in self._waiting:
            return False  # already known (a retried or resumed task)
        self._waiting[k] = float(duration_s)
        grew = False
        while self.listed in self._waiting:
            d = self._waiting.pop(self.listed)
            self._body.append(f"#EXTINF:{d:.6f},\n{segment_name(self.listed)}\n")
            self.listed += 1
            grew = True
        return grew

    @property
    def complete(self) -> bool:
        return self.listed == self.n

    def text(self, ended: bool = False) -> str:
        head = (
            f"#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{self.target}\n"
            "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        )
        return head + "".join(self._body) + ("#EXT-X-ENDLIST\n" if ended else "")


def created_unix(render_id: str, created_at: str = "") -> float:
    """When a render was created: its id starts with the creation time in ms (11 hex digits); other ids
    fall back to `created_at` (RFC 3339, whole seconds)."""
    try:
        if len(render_id) >= 11:
            return int(render_id[:11], 16) / 1000.0
    except ValueError:
        pass
    try:
        return datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return time.time()


class PlaylistPublisher:
    """Writes one render's playlist to the store as its segments finish (see the module docstring).

    `io(fn, *args)` runs a blocking store call off the event loop (core.store_io); `on_first()` is called
    once the first segment is listed in the store (the orchestrator then sets Render.playlist and
    first_playable_s)."""

    def __init__(
        self,
        store: Any,
        render_id: str,
        plan: Any,
        io: Callable[..., Awaitable[Any]],
        on_first: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.key, self.io, self.on_first = store, playlist_key(render_id), io, on_first
        rate = getattr(plan, "fps", 0.0) or FPS  # the rate of the plan's segment bounds
        durations = [segment_duration(s, e, plan.duration_s, rate) for s, e in plan.segments]
        self.durations = durations
        self.playlist = Playlist(len(durations), max(durations))
        self._version = 0  # bumped per text change
        self._written = 0
        self._ended = False
        self._first_done = False
        self._task: asyncio.Task | None = None

    def seed(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        """Segments a resumed render finished before (from its task log)."""
        for tid in results:
            if tid.startswith("hls/"):
                self.segment_done(int(tid.split("/", 1)[1]))

    def segment_done(self, k: int) -> None:
        """Segment k is in the store; #EXTINF is its whole frames by the plan (the media stage's rule)."""
        if self.playlist.add(k, self.durations[k]):
            self._version += 1
            self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._written < self._version:
            version, text = self._version, self.playlist.text(self._ended)
            try:
                await self.io(self.store.put_bytes, self.key, text.encode(), PLAYLIST_CONTENT_TYPE)
            except Exception:  # noqa: BLE001 - playback is a view: the render goes on; the next change retries
                log.warning("could not write the HLS playlist %s", self.key, exc_info=True)
                return
            self._written = version
            if not self._first_done and self.playlist.listed:
                self._first_done = True
                if self.on_first is not None:
                    self.on_first()

    async def end(self) -> None:
        """The render succeeded: write the playlist with #EXT-X-ENDLIST (every segment listed)."""
        self._ended = True
        self._version += 1
        self._kick()
        await self.flush()

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.gather(self._task, return_exceptions=True)
        if self._written < self._version:  # the last write failed: one more try, then give up
            self._task = None
            await self._drain()


class LocalMirror:
    """`lihq render --hls DIR`: copies a render's playlist and segments from the store into DIR as they
    appear. Segments first, then the playlist (written to a temporary name and renamed), so a player
    reading DIR/index.m3u8 (ffplay, hls.js) never meets a listed segment that is not there yet."""

    def __init__(self, store: Any, render_id: str, directory: Any) -> None:
        from pathlib import Path

        self.store, self.render_id, self.dir = store, render_id, Path(directory)
        self._copied: set[str] = set()
        self._last = b""

    def sync(self) -> int:
        """Copy what is new; return how many segments DIR holds. Blocking (store I/O)."""
        import os

        key = playlist_key(self.render_id)
        if not self.store.exists(key):
            return 0
        text = self.store.get_bytes(key)
        if text == self._last:
            return len(self._copied)
        self.dir.mkdir(parents=True, exist_ok=True)
        for line in text.decode().splitlines():
            name = line.strip()
            if not name or name.startswith("#") or name in self._copied:
                continue
            if "/" in name or name.startswith("."):
                raise ValueError(f"unexpected segment URI {name!r} in {key}")
            part = self.dir / f".{name}.part"
            self.store.get_file(f"renders/{self.render_id}/hls/{name}", part)
            os.replace(part, self.dir / name)
            self._copied.add(name)
        part = self.dir / f".{PLAYLIST_NAME}.part"
        part.write_bytes(text)
        os.replace(part, self.dir / PLAYLIST_NAME)
        self._last = text
        return len(self._copied)
