"""The HLS playlist (orchestrator/hls.py) and its place in a render (orchestrator/core.py): EVENT type,
target duration, the contiguous prefix under out-of-order completion, ENDLIST only on success,
Render.playlist / first_playable_s, and a resumed render re-listing what it finished before."""

from __future__ import annotations

import asyncio

import pytest

from lihq.errors import InvalidInput
from lihq.storage import FileStore
from orchestrator.core import Orchestrator
from orchestrator.hls import Playlist, playlist_key, segment_duration
from orchestrator.plan import build_plan
from orchestrator.scheduler import Limits, RetryPolicy, TaskResult
from orchestrator.spec import RenderSpec
from orchestrator.spec_proto import render_to_proto
from orchestrator.state import FAILED, SUCCEEDED

SPEC = RenderSpec(face_key="inputs/f.png", audio_key="inputs/a.wav", segment_frames=10, passes=1)
FAST = RetryPolicy(attempts=1, base_s=0.001)


def _entries(text: str) -> list[tuple[float, str]]:
    lines = text.splitlines()
    return [
        (float(ln.split(":")[1].rstrip(",")), lines[i + 1])
        for i, ln in enumerate(lines)
        if ln.startswith("#EXTINF")
    ]


def test_playlist_is_an_event_playlist_of_the_contiguous_prefix():
    pl = Playlist(4, 2.0)
    assert not pl.add(2, 2.0) and not pl.add(1, 2.0)  # a hole at 0: nothing listed yet
    text = pl.text()
    assert text.startswith("#EXTM3U\n") and "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    assert "#EXT-X-TARGETDURATION:2" in text and "#EXT-X-VERSION:3" in text and not _entries(text)
    assert pl.add(0, 2.0)  # 0 fills the hole: 0, 1, 2 at once, in order
    assert [u for _, u in _entries(pl.text())] == ["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"]
    assert not pl.add(1, 2.0)  # a repeat changes nothing
    assert "#EXT-X-ENDLIST" not in pl.text()
    assert pl.add(3, 0.72) and pl.complete
    assert _entries(pl.text())[-1] == (0.72, "seg_00003.ts")
    assert pl.text(ended=True).endswith("seg_00003.ts\n#EXT-X-ENDLIST\n")
    with pytest.raises(ValueError):
        pl.add(4, 1.0)


def test_target_duration_rounds_up_and_last_segment_is_whole_frames():
    assert Playlist(3, 2.0).target == 2 and Playlist(3, 2.04).target == 3 and Playlist(1, 0.3).target == 1
    assert segment_duration(0, 50, 10.0) == 2.0
    assert segment_duration(100, 133, 5.3) == pytest.approx(1.32)  # round(5.3 * 25) = 133 frames


class Stages:
    """Fake stages; hls segments finish in reverse order (the last one first), then encode."""

    def __init__(self, duration=1.0, fail_on=None):  # fail_on: "encode" fails after the segments
        self.duration, self.fail_on = duration, fail_on
        self.snapshots: list[str] = []  # the stored playlist when encode ran
        self.store = None

    async def run(self, task, deps):
        if task.stage == "hls":
            await asyncio.sleep(0.02 * (10 - (task.segment or 0)))
        out = {"key": f"cache/{task.id}"}
        if task.id == "speech":
            out["duration_s"] = self.duration
        if task.stage == "hls":
            out["duration_s"] = 0.4
        if task.id == "encode":
            for _ in range(500):  # wait until every segment is listed (encode does not wait for hls)
                pl = [o.key for o in self.store.list("renders/") if o.key.endswith("/hls/index.m3u8")]
                if pl and len(_entries(self.store.get_bytes(pl[0]).decode())) == 3:
                    self.snapshots.append(self.store.get_bytes(pl[0]).decode())
                    break
                await asyncio.sleep(0.02)
            if self.fail_on == "encode":
                raise InvalidInput("bad frames")
            out["video"] = "renders/x/output.mp4"
        return TaskResult(out)


def _run(tmp_path, stages, spec=SPEC):
    store = FileStore(tmp_path / "store", "lihq")
    stages.store = store

    async def go():
        orch = Orchestrator(store, stages, Limits(default_concurrency=3), FAST)
        [rec] = await orch.create([spec])
        return await orch.wait(rec.render_id)

    done = asyncio.run(go())
    text = (
        store.get_bytes(playlist_key(done.render_id)).decode()
        if store.exists(playlist_key(done.render_id))
        else ""
    )
    return done, text


def test_a_render_publishes_its_playlist_and_ends_it_on_success(tmp_path):
    stages = Stages(duration=1.0)  # 25 frames: segments 10, 10, 5
    done, text = _run(tmp_path, stages)
    assert done.state == SUCCEEDED
    assert [u for _, u in _entries(text)] == ["seg_00000.ts", "seg_00001.ts", "seg_00002.ts"]
    assert text.endswith("#EXT-X-ENDLIST\n") and "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    # while the render ran (at encode) every segment was listed, without ENDLIST
    assert stages.snapshots and "#EXT-X-ENDLIST" not in stages.snapshots[0]
    assert done.playlist_key == playlist_key(done.render_id) and done.first_playable_s > 0
    p = render_to_proto(done)
    assert p.playlist.key == done.playlist_key and p.first_playable_s == done.first_playable_s


def test_a_failed_render_never_ends_its_playlist(tmp_path):
    done, text = _run(tmp_path, Stages(fail_on="encode"))
    assert done.state == FAILED
    assert len(_entries(text)) == 3 and "#EXT-X-ENDLIST" not in text


def test_hls_tasks_follow_the_final_stage_and_precede_nothing():
    plan = build_plan(SPEC, 1.0)
    hls = [t for t in plan.tasks.values() if t.stage == "hls"]
    assert [t.deps for t in sorted(hls, key=lambda t: t.segment)] == [
        ("gfpgan1/0", "speech"),
        ("gfpgan1/1", "speech"),
        ("gfpgan1/2", "speech"),
    ]
    assert not any(d.startswith("hls/") for t in plan.tasks.values() for d in t.deps)


def test_a_resumed_render_relists_the_segments_it_finished_before(tmp_path):
    from orchestrator.hls import PlaylistPublisher

    plan = build_plan(SPEC, 1.0)
    store = FileStore(tmp_path / "store", "lihq")
    firsts: list[int] = []

    async def io(fn, *args):
        return fn(*args)

    async def go():
        pub = PlaylistPublisher(store, "r1", plan, io, lambda: firsts.append(1))
        pub.seed({"hls/1": {"duration_s": 0.4}, "hls/0": {"duration_s": 0.4}, "fomm1/2": {}})
        await pub.flush()
        return store.get_bytes(playlist_key("r1")).decode()

    text = asyncio.run(go())
    assert [u for _, u in _entries(text)] == ["seg_00000.ts", "seg_00001.ts"] and firsts == [1]


def test_local_mirror_copies_segments_before_the_playlist(tmp_path):
    """`lihq render --hls DIR`: what the store's playlist lists is in DIR, segments before the list."""
    from orchestrator.hls import LocalMirror

    store = FileStore(tmp_path / "store", "lihq")
    pl = Playlist(3, 1.0)
    mirror = LocalMirror(store, "r1", tmp_path / "out")
    assert mirror.sync() == 0 and not (tmp_path / "out").exists()  # nothing published yet
    for k in range(3):
        store.put_bytes(f"renders/r1/hls/seg_{k:05d}.ts", b"G" * (k + 1))
    pl.add(0, 1.0)
    store.put_bytes(playlist_key("r1"), pl.text().encode())
    assert mirror.sync() == 1
    assert (tmp_path / "out/seg_00000.ts").read_bytes() == b"G" and not (
        tmp_path / "out/seg_00001.ts"
    ).exists()
    pl.add(2, 1.0)
    pl.add(1, 1.0)
    store.put_bytes(playlist_key("r1"), pl.text(ended=True).encode())
    assert mirror.sync() == 3
    assert (tmp_path / "out/index.m3u8").read_text() == pl.text(ended=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "index.m3u8",
        "seg_00000.ts",
        "seg_00001.ts",
        "seg_00002.ts",
    ]
