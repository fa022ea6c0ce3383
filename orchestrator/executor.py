"""GrpcExecutor: runs plan tasks by calling the stage services over gRPC (docs/architecture.md §4).

Each task kind has an adapter `fn(call: StageCall, task, deps) -> outputs dict` that builds the stage
request from the task's parameters and its dependencies' outputs (object keys), and reads the keys it
needs from the response. Stage addresses come from `endpoints` (app name -> StageEndpoint), so one stage
can point at another server implementing the same proto (a swapped model). Calls run in threads (the
gRPC sync client), bounded by the scheduler's per-stage limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lihq.errors import Internal
from lihq.grpc.client import StageClient, StageEndpoint
from lihq.stages import PIPELINE_APPS, REGISTRY
from lihq.v1 import common_pb2, media_pb2
from orchestrator.plan import Task
from orchestrator.scheduler import TaskResult

Outputs = dict[str, Any]
Adapter = Callable[["StageCall", Task, Mapping[str, TaskResult]], Outputs]
ADAPTERS: dict[str, Adapter] = {}


def adapter(*names: str) -> Callable[[Adapter], Adapter]:
    def register(fn: Adapter) -> Adapter:
        for n in names:
            ADAPTERS[n] = fn
        return fn

    return register


def ref(key: str) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(key=key)


def out(deps: Mapping[str, TaskResult], tid: str, name: str) -> Any:
    return deps[tid].outputs[name]


@dataclass(frozen=True)
class RenderContext:
    render_id: str = ""
    synthetic: bool = False


class StageCall:
    """What an adapter may use: a client per app, the render's context, and the call context proto."""

    def __init__(self, clients: Mapping[str, StageClient], rc: RenderContext) -> None:
        self.clients, self.rc = clients, rc

    def __call__(self, app: str, method: str, request: Any) -> Any:
        if app not in self.clients:
            raise Internal(f"no endpoint configured for stage app {app!r}")
        return self.clients[app].call(method, request)

    @property
    def ctx(self) -> common_pb2.CallContext:
        return common_pb2.CallContext(render_id=self.rc.render_id)


# Service stubs per app, from the one stage table (lihq/stages.py REGISTRY)
STUBS: dict[str, type] = {app: REGISTRY[app].stub() for app in PIPELINE_APPS}


class GrpcExecutor:
    def __init__(self, endpoints: Mapping[str, StageEndpoint], rc: RenderContext | None = None) -> None:
        self.endpoints = dict(endpoints)
        self.rc = rc or RenderContext()
        self._clients = {
            app: StageClient(ep, STUBS[app]) for app, ep in self.endpoints.items() if app in STUBS
        }

    def for_render(self, rec: Any) -> GrpcExecutor:
        bound = GrpcExecutor.__new__(GrpcExecutor)
        bound.endpoints, bound._clients = self.endpoints, self._clients
        bound.rc = RenderContext(rec.render_id, bool(getattr(rec, "synthetic", False)))
        return bound

    async def run(self, task: Task, deps: Mapping[str, TaskResult]) -> TaskResult:
        kind = task.id.split("/")[0]
        fn = ADAPTERS.get(kind)
        if fn is None:
            raise Internal(f"no adapter for task kind {kind!r}")
        t0 = time.perf_counter()
        outputs = await asyncio.to_thread(fn, StageCall(self._clients, self.rc), task, deps)
        return TaskResult(outputs, time.perf_counter() - t0, bool(outputs.pop("cache_hit", False)))

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


# -- media-stage adapters -------------------------------------------------------------------------
KIND = {
    "image": media_pb2.MEDIA_KIND_IMAGE,
    "audio": media_pb2.MEDIA_KIND_AUDIO,
    "video": media_pb2.MEDIA_KIND_VIDEO,
}


@adapter("face")
def _face(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    if task.params.get("kind") == "video":  # a face video (dubbing): orchestrator/adapters_models.py
        return ADAPTERS["face.video"](call, task, deps)
    ing = call(
        "media",
        "Ingest",
        media_pb2.IngestRequest(upload=ref(task.params["key"]), kind=KIND["image"], ctx=call.ctx),
    )
    size = int(task.params.get("size", 256))
    r = call("media", "PrepareFace", media_pb2.PrepareFaceRequest(image=ing.input, size=size, ctx=call.ctx))
    return {
        "image": ing.input.key,
        "crop": r.crop.key,
        "transform": r.transform.key,
        "face_box_crop": [r.crop_face_x, r.crop_face_y, r.crop_face_width, r.crop_face_height],
        "width": ing.info.width,
        "height": ing.info.height,
    }


@adapter("speech", "reference")
def _ingest(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    if task.stage == "tts":
        return ADAPTERS["tts"](call, task, deps)
    kind = task.params["kind"]
    r = call(
        "media",
        "Ingest",
        media_pb2.IngestRequest(upload=ref(task.params["key"]), kind=KIND[kind], ctx=call.ctx),
    )
    return {"audio" if kind == "audio" else "video": r.input.key, "duration_s": r.info.duration_s}


@adapter("audio16k")
def _audio16k(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    r = call(
        "media",
        "ExtractAudio",
        media_pb2.ExtractAudioRequest(
            source=ref(out(deps, "speech", "audio")), sample_rates=[16000], ctx=call.ctx
        ),
    )
    return {"wav16k": r.tracks[0].wav.key, "cache_hit": r.metrics.cache_hit}


@adapter("driver")
def _driver(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    p = task.params
    if task.stage == "procedural":
        seg = common_pb2.Segment(index=task.segment or 0, start=p["start"], end=p["end"])
        r = call(
            "media",
            "ProceduralMotion",
            media_pb2.ProceduralMotionRequest(
                face=ref(out(deps, "face", "crop")),
                segment=seg,
                seed=p["seed"],
                motion=p.get("motion", ""),
                ctx=call.ctx,
            ),
        )
        return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}
    size = int(p["size"])
    r = call(
        "media",
        "CutVideo",
        media_pb2.CutVideoRequest(
            video=ref(out(deps, "reference", "video")),
            offset_s=p["offset_s"],
            duration_s=p["n_frames"] / 25.0,
            fps=25.0,
            width=size,
            height=size,
            segment_frames=p["segment_frames"],
            ctx=call.ctx,
        ),
    )
    seg = r.segments[task.segment or 0]
    if (seg.segment.start, seg.segment.end) != (p["start"], p["end"]):
        raise Internal(
            f"cut segment {seg.segment.start}-{seg.segment.end} != planned {p['start']}-{p['end']}"
        )
    return {"pack": seg.pack.key, "cache_hit": r.metrics.cache_hit}


@adapter("paste")
def _paste(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    prev = next(d for d in task.deps if d != "face")
    r = call(
        "media",
        "PasteBack",
        media_pb2.PasteBackRequest(
            frames=ref(out(deps, prev, "pack")),
            image=ref(out(deps, "face", "image")),
            transform=ref(out(deps, "face", "transform")),
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


@adapter("encode")
def _encode(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    packs = [ref(deps[d].outputs["pack"]) for d in task.deps if d != "speech"]
    key = f"renders/{call.rc.render_id}/output.mp4" if call.rc.render_id else ""
    r = call(
        "media",
        "Encode",
        media_pb2.EncodeRequest(
            packs=packs,
            audio=ref(out(deps, "speech", "audio")),
            output_key=key,
            duration_s=float(task.params.get("duration_s", 0.0)),
            ctx=call.ctx,
        ),
    )
    return {
        "video": r.video.key,
        "duration_s": r.info.duration_s,
        "width": r.info.width,
        "height": r.info.height,
    }


@adapter("hls")
def _hls(call: StageCall, task: Task, deps: Mapping[str, TaskResult]) -> Outputs:
    """One HLS segment of the final frames (issue #18), written next to the render's playlist."""
    from orchestrator.hls import segment_name
    from orchestrator.spec import FPS

    p = task.params
    prev = next(d for d in task.deps if d != "speech")
    rate = float(p.get("rate") or FPS)  # the plan's frame rate (a face video's own)
    start_s = p["start"] / rate
    end_s = min(p["end"] / rate, float(p["duration_s"]))
    rid = call.rc.render_id
    key = f"renders/{rid}/hls/{segment_name(task.segment or 0)}" if rid else ""
    r = call(
        "media",
        "EncodeSegment",
        media_pb2.EncodeSegmentRequest(
            pack=ref(out(deps, prev, "pack")),
            audio=ref(out(deps, "speech", "audio")),
            start_s=start_s,
            end_s=end_s,
            output_key=key,
            ctx=call.ctx,
        ),
    )
    return {"segment": r.segment.key, "duration_s": r.duration_s, "cache_hit": r.metrics.cache_hit}
