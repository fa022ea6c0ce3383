"""Adapters for the model stages: TTS, FOMM, Wav2Lip, GFPGAN, QVI, MODNet (see orchestrator/executor.py).

Importing this module registers them. Each builds one stage request from the task's parameters and its
dependencies' outputs, and returns the object keys the next tasks need.
"""

from __future__ import annotations

from collections.abc import Mapping

from lihq.v1 import (
    common_pb2,
    interpolation_pb2,
    lipsync_pb2,
    matting_pb2,
    motion_pb2,
    restoration_pb2,
    speech_pb2,
)
from orchestrator.executor import Outputs, StageCall, adapter, out, ref
from orchestrator.plan import Task
from orchestrator.scheduler import TaskResult

Deps = Mapping[str, TaskResult]


def _segment(task: Task, before: int = 0, after: int = 0) -> common_pb2.Segment:
    p = task.params
    return common_pb2.Segment(
        index=task.segment or 0, start=p["start"], end=p["end"], context_before=before, context_after=after
    )


@adapter("tts")
def _tts(call: StageCall, task: Task, deps: Deps) -> Outputs:
    p = task.params
    opts = speech_pb2.SpeechOptions(
        backend=p.get("backend", ""), voice=p.get("voice", ""), seed=int(p.get("seed", 0))
    )
    r = call("tts", "Synthesize", speech_pb2.SynthesizeRequest(text=p["text"], options=opts, ctx=call.ctx))
    return {"audio": r.wav.key, "duration_s": r.duration_s, "manifest": r.manifest.key}


# -- FOMM -------------------------------------------------------------------------------------------
@adapter("fomm1.prepare", "fomm2.prepare")
def _fomm_prepare(call: StageCall, task: Task, deps: Deps) -> Outputs:
    first = next(d for d in task.deps if d != "face")
    r = call(
        "fomm",
        "PrepareMotion",
        motion_pb2.PrepareMotionRequest(
            source=ref(out(deps, "face", "crop")),
            driving_first=ref(out(deps, first, "pack")),
            checkpoint=task.params.get("checkpoint", "vox"),
            ctx=call.ctx,
        ),
    )
    return {"globals": r.globals.key, "cache_hit": r.metrics.cache_hit}


@adapter("fomm1", "fomm2")
def _fomm(call: StageCall, task: Task, deps: Deps) -> Outputs:
    prepare = next(d for d in task.deps if d.endswith(".prepare"))
    driving = next(d for d in task.deps if d not in ("face", prepare))
    absolute = task.params["mode"] == "absolute"
    r = call(
        "fomm",
        "Animate",
        motion_pb2.AnimateRequest(
            source=ref(out(deps, "face", "crop")),
            driving=ref(out(deps, driving, "pack")),
            segment=_segment(task),
            globals=ref(out(deps, prepare, "globals")),
            mode=motion_pb2.KEYPOINT_MODE_ABSOLUTE if absolute else motion_pb2.KEYPOINT_MODE_RELATIVE,
            adapt_movement_scale=bool(task.params.get("adapt_movement_scale")),
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


# -- Wav2Lip ----------------------------------------------------------------------------------------
@adapter("wav2lip.mel")
def _mel(call: StageCall, task: Task, deps: Deps) -> Outputs:
    r = call(
        "wav2lip",
        "PrepareAudio",
        lipsync_pb2.PrepareAudioRequest(
            wav_16k=ref(out(deps, "audio16k", "wav16k")),
            fps=float(task.params.get("fps", 25.0)),
            ctx=call.ctx,
        ),
    )
    return {"mel": r.mel.key, "cache_hit": r.metrics.cache_hit}


def synthetic_box(face_box_crop: list[int], pads: tuple[int, ...], size: int = 256) -> lipsync_pb2.FaceBox:
    """The known face region of the aligned crop, padded as Wav2Lip pads a detection (top bottom left right)."""
    x, y, w, h = face_box_crop
    top, bottom, left, right = pads
    return lipsync_pb2.FaceBox(
        y1=max(0, y - top), y2=min(size, y + h + bottom), x1=max(0, x - left), x2=min(size, x + w + right)
    )


@adapter("wav2lip.track")
def _track(call: StageCall, task: Task, deps: Deps) -> Outputs:
    packs = [ref(deps[d].outputs["pack"]) for d in task.deps if d != "face"]
    top, bottom, left, right = task.params["pads"]
    req = lipsync_pb2.TrackFacesRequest(
        packs=packs, pads=lipsync_pb2.Pads(top=top, bottom=bottom, left=left, right=right), ctx=call.ctx
    )
    if (
        call.rc.synthetic
    ):  # synthetic S3FD weights find nothing meaningful: use the known face region, said so
        req.box.CopyFrom(synthetic_box(out(deps, "face", "face_box_crop"), task.params["pads"]))
    r = call("wav2lip", "TrackFaces", req)
    return {"track": r.track.key, "synthetic_box": call.rc.synthetic, "cache_hit": r.metrics.cache_hit}


def _lip_sync(call: StageCall, task: Task, deps: Deps, frames: str, track: str) -> Outputs:
    """One Wav2Lip LipSync of a segment: the frames of task `frames`, the face track of task `track`."""
    r = call(
        "wav2lip",
        "LipSync",
        lipsync_pb2.LipSyncRequest(
            frames=ref(out(deps, frames, "pack")),
            segment=_segment(task),
            mel=ref(out(deps, "wav2lip.mel", "mel")),
            track=ref(out(deps, track, "track")),
            checkpoint=task.params["checkpoint"],
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


@adapter("wav2lip")
def _lipsync(call: StageCall, task: Task, deps: Deps) -> Outputs:
    frames = next(d for d in task.deps if d.startswith("fomm1/"))
    return _lip_sync(call, task, deps, frames, "wav2lip.track")


# -- GFPGAN -----------------------------------------------------------------------------------------
@adapter("gfpgan1", "gfpgan2")
def _restore(call: StageCall, task: Task, deps: Deps) -> Outputs:
    p = task.params
    (src,) = task.deps
    r = call(
        "gfpgan",
        "Restore",
        restoration_pb2.RestoreRequest(
            frames=ref(out(deps, src, "pack")),
            segment=_segment(task),
            version=p["version"],
            upscale=p["upscale"],
            output_size=p["output_size"],
            background_upsampler=p["background_upsampler"],
            noise_seed=p["seed"],
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


# -- QVI --------------------------------------------------------------------------------------------
@adapter("qvi")
def _interpolate(call: StageCall, task: Task, deps: Deps) -> Outputs:
    p = task.params
    before = 1 if p["start"] > 0 else 0
    after = min(2, p["n_frames"] - p["end"])
    packs = [ref(deps[d].outputs["pack"]) for d in task.deps]
    r = call(
        "qvi",
        "Interpolate",
        interpolation_pb2.InterpolateRequest(
            frames=packs, segment=_segment(task, before, after), k=p["k"], ctx=call.ctx
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


# -- MODNet -----------------------------------------------------------------------------------------
@adapter("matte")
def _matte(call: StageCall, task: Task, deps: Deps) -> Outputs:
    (src,) = task.deps
    r = call(
        "modnet",
        "Matte",
        matting_pb2.MatteRequest(frames=ref(out(deps, src, "pack")), segment=_segment(task), ctx=call.ctx),
    )
    return {"matte": r.matte.key, "cache_hit": r.metrics.cache_hit}


@adapter("composite")
def _composite(call: StageCall, task: Task, deps: Deps) -> Outputs:
    p = task.params
    src = next(d for d in task.deps if not d.startswith("matte/"))
    matte = next(d for d in task.deps if d.startswith("matte/"))
    bg = matting_pb2.Background(video_offset_s=p["video_offset_s"])
    if p["kind"] == "color":
        bg.color = p["color"]
    elif p["kind"] == "image":
        bg.image.key = p["image_key"]
    else:
        bg.video.key = p["video_key"]
    ox, oy = p["offset"]
    place = matting_pb2.Placement(scale=p["scale"], offset_x=ox, offset_y=oy, rotation_deg=p["rotation_deg"])
    r = call(
        "modnet",
        "Composite",
        matting_pb2.CompositeRequest(
            frames=ref(out(deps, src, "pack")),
            matte=ref(out(deps, matte, "matte")),
            segment=_segment(task),
            background=bg,
            placement=place,
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


# -- a video as the face (dubbing, issue #15; orchestrator/plan.py _video_plan) ----------------------
FACE_CHECK_FIX = "use a video that shows a face (a frontal, unobstructed face in most frames)"


@adapter("face.video")
def _face_video(call: StageCall, task: Task, deps: Deps) -> Outputs:
    """Ingest the video, then look for a face in frames spread over it: none at all is INVALID_ARGUMENT
    naming `face` (the render's first task). With synthetic weights the Haar detector looks, since
    random S3FD weights find nothing."""
    from lihq.errors import InvalidInput
    from lihq.v1 import media_pb2

    ing = call(
        "media",
        "Ingest",
        media_pb2.IngestRequest(
            upload=ref(task.params["key"]), kind=media_pb2.MEDIA_KIND_VIDEO, ctx=call.ctx
        ),
    )
    video = ref(ing.input.key)
    sample = int(task.params.get("sample", 8))
    r = call(
        "media", "FaceVideoFrames", media_pb2.FaceVideoFramesRequest(video=video, sample=sample, ctx=call.ctx)
    )
    top, bottom, left, right = task.params.get("pads", (0, 20, 0, 0))
    req = lipsync_pb2.TrackFacesRequest(
        packs=[ref(r.pack.key)],
        pads=lipsync_pb2.Pads(top=top, bottom=bottom, left=left, right=right),
        carry_last_box=True,
        detector="haar" if call.rc.synthetic else "",
        ctx=call.ctx,
    )
    try:
        call("wav2lip", "TrackFaces", req)
    except InvalidInput as exc:
        raise InvalidInput(
            f"face: no face found in {sample} frames spread over the video ({exc.message}); {FACE_CHECK_FIX}"
        ) from None
    return {
        "kind": "video",
        "video": ing.input.key,
        "fps": r.fps,
        "width": r.width,
        "height": r.height,
        "source_frames": r.source_frames,
        "duration_s": ing.info.duration_s,
    }


@adapter("vframes")
def _video_frames(call: StageCall, task: Task, deps: Deps) -> Outputs:
    from lihq.v1 import media_pb2

    r = call(
        "media",
        "FaceVideoFrames",
        media_pb2.FaceVideoFramesRequest(
            video=ref(out(deps, "face", "video")), segment=_segment(task), ctx=call.ctx
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


@adapter("vtrack")
def _video_track(call: StageCall, task: Task, deps: Deps) -> Outputs:
    top, bottom, left, right = task.params["pads"]
    req = lipsync_pb2.TrackFacesRequest(
        packs=[ref(deps[d].outputs["pack"]) for d in task.deps],
        pads=lipsync_pb2.Pads(top=top, bottom=bottom, left=left, right=right),
        carry_last_box=True,  # frames without a face keep a box for Wav2Lip; the paste leaves them as they were
        detector="haar" if call.rc.synthetic else "",  # said in the docs: synthetic S3FD finds no face
        ctx=call.ctx,
    )
    r = call("wav2lip", "TrackFaces", req)
    return {"track": r.track.key, "carried": r.carried_frames, "cache_hit": r.metrics.cache_hit}


@adapter("vlips")
def _video_lips(call: StageCall, task: Task, deps: Deps) -> Outputs:
    return _lip_sync(call, task, deps, f"vframes/{task.segment}", "vtrack")


@adapter("vcrop", "vpaste")
def _video_crop_paste(call: StageCall, task: Task, deps: Deps) -> Outputs:
    from lihq.v1 import media_pb2

    k = task.segment
    paste = task.id.startswith("vpaste/")
    req = media_pb2.FaceVideoCropRequest(
        frames=ref(out(deps, f"vframes/{k}" if paste else f"vlips/{k}", "pack")),
        track=ref(out(deps, "vtrack", "track")),
        ctx=call.ctx,
    )
    if paste:
        req.restored.key = out(deps, f"vrestore/{k}", "pack")
    r = call("media", "FaceVideoPaste" if paste else "FaceVideoCrop", req)
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}


@adapter("vrestore")
def _video_restore(call: StageCall, task: Task, deps: Deps) -> Outputs:
    p = task.params
    r = call(
        "gfpgan",
        "Restore",
        restoration_pb2.RestoreRequest(
            frames=ref(out(deps, f"vcrop/{task.segment}", "pack")),
            segment=_segment(task),
            version=p["version"],
            upscale=1,
            only_center_face=True,  # the crop is centred on the tracked face
            noise_seed=p["seed"],
            ctx=call.ctx,
        ),
    )
    return {"pack": r.pack.key, "cache_hit": r.metrics.cache_hit}
