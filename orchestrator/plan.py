"""The LIHQ recipe (docs/architecture.md §1) as a graph of (stage, segment) tasks plus per-render globals.

Pure code: no gRPC, no store. `build_plan(spec, audio_duration_s)` returns every task with its
dependencies and parameters; the scheduler runs a task as soon as its dependencies are done, so
GFPGAN's segment k starts when Wav2Lip has segment k, not when the whole Wav2Lip pass is done. (The
Wav2Lip face-box track is a per-render global over the whole pass-1 clip, so it waits for all of FOMM
pass 1; everything downstream of it pipelines by segment.)

Task ids: globals are `<name>` ("speech", "face", "fomm1.prepare", ...), segment tasks `<stage>/<k>`.
Stages (the `stage` field) name the service capability that runs the task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lihq.media import frame_count
from lihq.stages import TASK_APPS
from orchestrator.spec import FPS, RenderSpec, check

# task kind (`Task.stage`) -> the Serve app (services/<folder>) that runs it: the one stage table
STAGE_APPS = TASK_APPS
QVI_CONTEXT = (1, 2)


@dataclass(frozen=True)
class Task:
    id: str
    stage: str
    segment: int | None
    deps: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return STAGE_APPS[self.stage]


@dataclass(frozen=True)
class Plan:
    spec: RenderSpec
    duration_s: float
    n_frames: int  # at 25 fps, before interpolation
    segments: tuple[tuple[int, int], ...]
    tasks: Mapping[str, Task]
    final: str  # id prefix of the last per-segment stage feeding the encode
    fps: float = 0.0  # a face video's own rate (0: the spec's)

    @property
    def fps_out(self) -> float:
        return self.fps or self.spec.fps_out

    def by_stage(self) -> dict[str, list[Task]]:
        out: dict[str, list[Task]] = {}
        for t in self.tasks.values():
            out.setdefault(t.id.split("/")[0], []).append(t)
        return out

    def topological(self) -> Iterator[Task]:
        done: set[str] = set()
        pending = dict(self.tasks)
        while pending:
            ready = [t for t in pending.values() if all(d in done for d in t.deps)]
            if not ready:
                raise ValueError(f"cycle among {sorted(pending)}")
            for t in sorted(ready, key=lambda t: t.id):
                done.add(t.id)
                del pending[t.id]
                yield t


def n_frames_for(duration_s: float) -> int:
    """Frames at 25 fps: the media stage's rule (round half up), so plan and cut always agree."""
    return max(1, frame_count(duration_s, FPS))


def _neighbours(prefix: str, k: int, n: int, before: int, after: int) -> tuple[str, ...]:
    return tuple(f"{prefix}/{j}" for j in range(max(0, k - before), min(n, k + after + 1)))


class _Builder:
    def __init__(self, spec: RenderSpec, segments: tuple[tuple[int, int], ...], n_frames: int) -> None:
        self.spec, self.segments, self.n, self.tasks = spec, segments, len(segments), {}
        self.n_frames = n_frames

    def add(
        self, tid: str, stage: str, deps: tuple[str, ...] = (), seg: int | None = None, **params: Any
    ) -> str:
        self.tasks[tid] = Task(tid, stage, seg, tuple(deps), params)
        return tid

    def per_segment(self, name: str, stage: str, deps_of, **params: Any) -> str:
        for k, (start, end) in enumerate(self.segments):
            self.add(
                f"{name}/{k}", stage, deps_of(k), k, start=start, end=end, n_frames=self.n_frames, **params
            )
        return name


def _globals(b: _Builder, s: RenderSpec) -> None:
    b.add("face", "face", key=s.face_key, size=256)
    if s.text:
        b.add("speech", "tts", text=s.text, voice=s.voice, backend=s.tts_backend, seed=s.seed)
    else:
        b.add("speech", "ingest", key=s.audio_key, kind="audio")
    if not s.keep_lips:  # keep_lips: the reference video's own mouth, no Wav2Lip (nor its mel)
        b.add("audio16k", "audio", ("speech",), rates=(16000,))
        b.add("wav2lip.mel", "wav2lip", ("audio16k",), fps=FPS)
    b.add("fomm1.prepare", "fomm", ("face", "driver/0"), checkpoint="vox")


def _driver(b: _Builder, s: RenderSpec) -> None:
    if s.reference_video_key:
        b.add("reference", "ingest", key=s.reference_video_key, kind="video")
        # one CutVideo call cuts every segment (content-addressed): driver/0 makes them, the other
        # segments wait for it and read the cached packs instead of cutting the whole range again
        b.per_segment(
            "driver",
            "cut",
            lambda k: ("reference", "speech") + (("driver/0",) if k else ()),
            offset_s=s.reference_offset_s,
            size=256,
            segment_frames=s.segment_frames,
        )
    else:
        b.per_segment(
            "driver",
            "procedural",
            lambda k: ("face", "speech"),
            seed=s.seed,
            size=256,
            motion=s.motion_preset,
        )


def _pass1(b: _Builder, s: RenderSpec) -> str:
    n = b.n
    b.per_segment(
        "fomm1",
        "fomm",
        lambda k: ("face", "fomm1.prepare", f"driver/{k}"),
        mode="relative",
        adapt_movement_scale=True,
    )
    mouth = "fomm1"  # keep_lips: FOMM's frames keep the reference's mouth; GFPGAN reads them directly
    if not s.keep_lips:
        # the smoothed face-box track is a per-render global over the whole pass-1 clip (docs/architecture.md §3)
        b.add("wav2lip.track", "wav2lip", tuple(f"fomm1/{k}" for k in range(n)) + ("face",), pads=s.pads)
        mouth = b.per_segment(
            "wav2lip",
            "wav2lip",
            lambda k: (f"fomm1/{k}", "wav2lip.track", "wav2lip.mel"),
            checkpoint=s.wav2lip_checkpoint,
        )
    final = s.passes == 1
    b.per_segment(
        "gfpgan1",
        "gfpgan",
        lambda k: (f"{mouth}/{k}",),
        version=s.gfpgan_version,
        upscale=s.upscale if final else 1,
        output_size=0 if final else 256,
        background_upsampler=s.background_upsampler and final,
        seed=s.seed,
    )
    return "gfpgan1"


def _pass2(b: _Builder, s: RenderSpec) -> str:
    b.add("fomm2.prepare", "fomm", ("face", "gfpgan1/0"), checkpoint="vox")
    b.per_segment(
        "fomm2",
        "fomm",
        lambda k: ("face", "fomm2.prepare", f"gfpgan1/{k}"),
        mode="absolute",
        adapt_movement_scale=False,
    )
    b.per_segment(
        "gfpgan2",
        "gfpgan",
        lambda k: (f"fomm2/{k}",),
        version=s.gfpgan_version,
        upscale=s.upscale,
        output_size=0,
        background_upsampler=s.background_upsampler,
        seed=s.seed,
    )
    return "gfpgan2"


def _post(b: _Builder, s: RenderSpec, last: str) -> str:
    n = b.n
    if s.interpolate:
        prev = last
        b.per_segment(
            "qvi",
            "qvi",
            lambda k: _neighbours(prev, k, n, *QVI_CONTEXT),
            k=s.interpolate,
            context=QVI_CONTEXT,
        )
        last = "qvi"
    if s.background.kind != "none":
        prev = last
        b.per_segment("matte", "modnet", lambda k: (f"{prev}/{k}",))
        bg = s.background
        b.per_segment(
            "composite",
            "composite",
            lambda k: (f"{prev}/{k}", f"matte/{k}"),
            kind=bg.kind,
            color=bg.color,
            image_key=bg.image_key,
            video_key=bg.video_key,
            video_offset_s=bg.video_offset_s,
            scale=bg.speaker_scale,
            offset=(bg.offset_x, bg.offset_y),
            rotation_deg=bg.rotation_deg,
        )
        last = "composite"
    if s.paste_back:
        prev = last
        b.per_segment("paste", "paste", lambda k: (f"{prev}/{k}", "face"))
        last = "paste"
    return last


# -- a video as the face (dubbing, issue #15) ------------------------------------------------------
# Raw bytes of one segment's frames a face video aims for: a 1080p frame is 6.2 MB, so 1080p segments
# hold 20 frames (~124 MB raw while a stage holds the pack, ~40-70 MB stored after zstd); small videos
# keep `segment_frames`.
VIDEO_SEGMENT_BYTES = 125_000_000
FACE_CHECK_SAMPLES = 8  # frames spread over the video that the render's first task looks for a face in


def video_segment_frames(width: int, height: int, wanted: int) -> int:
    """Frames per segment for a face video of width x height: `wanted`, fewer when packs would be big."""
    return max(1, min(wanted, VIDEO_SEGMENT_BYTES // max(1, width * height * 3)))


def _video_plan(spec: RenderSpec, duration: float, face: Mapping[str, Any] | None) -> Plan:
    """No FOMM: the video's own frames (ping-pong over it, at its rate and size) -> face track ->
    Wav2Lip -> GFPGAN on square face crops -> feathered paste into the original frames -> encode.
    `face` is the face task's result (rate, size, source frames); before it exists (the first tasks)
    a placeholder gives the same global tasks."""
    f = face or {}
    fps = float(f.get("fps") or FPS)
    n_frames = frame_count(duration, fps)
    seg = video_segment_frames(int(f.get("width") or 16), int(f.get("height") or 16), spec.segment_frames)
    segments = tuple((st, min(n_frames, st + seg)) for st in range(0, n_frames, seg))
    b = _Builder(spec, segments, n_frames)
    b.add("face", "face", key=spec.face_key, kind="video", sample=FACE_CHECK_SAMPLES, pads=spec.pads)
    if spec.text:
        b.add("speech", "tts", text=spec.text, voice=spec.voice, backend=spec.tts_backend, seed=spec.seed)
    else:
        b.add("speech", "ingest", key=spec.audio_key, kind="audio")
    b.add("audio16k", "audio", ("speech",), rates=(16000,))
    b.add("wav2lip.mel", "wav2lip", ("audio16k",), fps=fps)
    b.per_segment("vframes", "cut", lambda k: ("face",))
    # the smoothed track is a per-render global (Wav2Lip's 5-frame smoothing spans segments); frames
    # without a face carry a box for Wav2Lip and are passed through unchanged by the paste
    b.add("vtrack", "wav2lip", tuple(f"vframes/{k}" for k in range(b.n)), pads=spec.pads)
    b.per_segment(
        "vlips",
        "wav2lip",
        lambda k: (f"vframes/{k}", "vtrack", "wav2lip.mel"),
        checkpoint=spec.wav2lip_checkpoint,
    )
    b.per_segment("vcrop", "paste", lambda k: (f"vlips/{k}", "vtrack"))
    b.per_segment(
        "vrestore", "gfpgan", lambda k: (f"vcrop/{k}",), version=spec.gfpgan_version, seed=spec.seed
    )
    b.per_segment("vpaste", "paste", lambda k: (f"vframes/{k}", "vtrack", f"vrestore/{k}"))
    b.per_segment(
        "hls", "hls", lambda k: (f"vpaste/{k}", "speech"), duration_s=duration, rate=fps
    )  # issue #18
    b.add(
        "encode",
        "encode",
        tuple(f"vpaste/{k}" for k in range(b.n)) + ("speech",),
        fps=fps,
        duration_s=duration,
    )
    return Plan(spec, duration, n_frames, segments, dict(b.tasks), "vpaste", fps)


def build_plan(spec: RenderSpec, audio_duration_s: float, face: Mapping[str, Any] | None = None) -> Plan:
    """The task graph for one render of `audio_duration_s` seconds (cut to draft_seconds if set).
    `face`: the face task's result, which a face video's plan needs (its rate and size)."""
    check(spec)
    duration = min(audio_duration_s, spec.draft_seconds) if spec.draft_seconds else audio_duration_s
    if duration <= 0:
        from lihq.errors import InvalidInput

        raise InvalidInput("the speech is empty (0 s)")
    if spec.face_video:
        return _video_plan(spec, duration, face)
    n_frames = n_frames_for(duration)
    seg = spec.segment_frames
    segments = tuple((st, min(n_frames, st + seg)) for st in range(0, n_frames, seg))
    b = _Builder(spec, segments, n_frames)
    _globals(b, spec)
    _driver(b, spec)
    last = _pass1(b, spec)
    if spec.passes == 2:
        last = _pass2(b, spec)
    last = _post(b, spec, last)
    final = last
    # HLS (issue #18): each final segment also becomes a playable MPEG-TS segment as soon as it exists
    b.per_segment("hls", "hls", lambda k: (f"{final}/{k}", "speech"), duration_s=duration)
    b.add(
        "encode",
        "encode",
        tuple(f"{final}/{k}" for k in range(len(segments))) + ("speech",),
        fps=spec.fps_out,
        duration_s=duration,
    )
    return Plan(spec, duration, n_frames, segments, dict(b.tasks), final)
