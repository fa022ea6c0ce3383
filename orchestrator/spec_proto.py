"""lihq.v1 RenderSpec/Render protos <-> orchestrator dataclasses."""

from __future__ import annotations

from lihq.errors import InvalidInput
from lihq.v1 import common_pb2, render_pb2
from orchestrator.spec import Background, RenderSpec
from orchestrator.state import RenderRecord

STATES = {
    "QUEUED": render_pb2.RENDER_STATE_QUEUED,
    "RUNNING": render_pb2.RENDER_STATE_RUNNING,
    "SUCCEEDED": render_pb2.RENDER_STATE_SUCCEEDED,
    "FAILED": render_pb2.RENDER_STATE_FAILED,
    "CANCELLED": render_pb2.RENDER_STATE_CANCELLED,
}
STATE_NAMES = {v: k for k, v in STATES.items()}


def _key(r: common_pb2.ObjectRef, what: str) -> str:
    if r.bucket:
        raise InvalidInput(f"{what}: give keys in the orchestrator's bucket (leave bucket empty)")
    return r.key


def spec_from_proto(p: render_pb2.RenderSpec) -> RenderSpec:
    bg = p.background
    src = bg.WhichOneof("source")
    background = Background(
        color=bg.color if src == "color" else "",
        image_key=_key(bg.image, "background image") if src == "image" else "",
        video_key=_key(bg.video, "background video") if src == "video" else "",
        video_offset_s=bg.video_offset_s,
        speaker_scale=bg.speaker_scale or 1.0,
        offset_x=bg.offset_x,
        offset_y=bg.offset_y,
        rotation_deg=bg.rotation_deg,
    )
    speech = p.WhichOneof("speech")
    pads = (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right)
    return RenderSpec(
        face_key=_key(p.face, "face"),
        audio_key=_key(p.audio, "audio") if speech == "audio" else "",
        text=p.text if speech == "text" else "",
        voice=p.voice,
        tts_backend=p.tts_backend,
        reference_video_key=_key(p.reference_video, "reference video"),
        reference_offset_s=p.reference_offset_s,
        passes=p.passes,
        wav2lip_checkpoint=p.wav2lip_checkpoint,
        pads=pads if any(pads) else (0, 20, 0, 0),
        gfpgan_version=p.gfpgan_version,
        upscale=p.upscale,
        background_upsampler=p.background_upsampler,
        interpolate=p.interpolate,
        background=background,
        paste_back=p.paste_back,
        draft_seconds=p.draft_seconds,
        seed=p.seed,
        segment_frames=p.segment_frames,
        keep_lips=p.keep_lips,
        motion_preset=p.motion,
        reference_offset_random=p.reference_offset_random,
        face_video=p.face_video,
    )


def spec_to_proto(s: RenderSpec) -> render_pb2.RenderSpec:
    p = render_pb2.RenderSpec(
        face=common_pb2.ObjectRef(key=s.face_key),
        voice=s.voice,
        tts_backend=s.tts_backend,
        reference_offset_s=s.reference_offset_s,
        passes=s.passes,
        wav2lip_checkpoint=s.wav2lip_checkpoint,
        pad_top=s.pads[0],
        pad_bottom=s.pads[1],
        pad_left=s.pads[2],
        pad_right=s.pads[3],
        gfpgan_version=s.gfpgan_version,
        upscale=s.upscale,
        background_upsampler=s.background_upsampler,
        interpolate=s.interpolate,
        paste_back=s.paste_back,
        draft_seconds=s.draft_seconds,
        seed=s.seed,
        segment_frames=s.segment_frames,
        keep_lips=s.keep_lips,
        motion=s.motion_preset,
        reference_offset_random=s.reference_offset_random,
        face_video=s.face_video,
    )
    if s.audio_key:
        p.audio.key = s.audio_key
    else:
        p.text = s.text
    if s.reference_video_key:
        p.reference_video.key = s.reference_video_key
    b = s.background
    if b.color:
        p.background.color = b.color
    elif b.image_key:
        p.background.image.key = b.image_key
    elif b.video_key:
        p.background.video.key = b.video_key
    if b.kind != "none":
        p.background.video_offset_s = b.video_offset_s
        p.background.speaker_scale = b.speaker_scale
        p.background.offset_x, p.background.offset_y = b.offset_x, b.offset_y
        p.background.rotation_deg = b.rotation_deg
    return p


def render_to_proto(r: RenderRecord) -> render_pb2.Render:
    return render_pb2.Render(
        render_id=r.render_id,
        state=STATES[r.state],
        spec=spec_to_proto(r.spec),
        progress=[
            render_pb2.StageProgress(stage=s, done=d, total=t) for s, (d, t) in sorted(r.progress.items())
        ],
        eta_s=r.eta_s,
        output=common_pb2.ObjectRef(key=r.output_key) if r.output_key else None,
        error=r.error,
        error_stage=r.error_stage,
        error_code=r.error_code,
        queue_position=r.queue_position if r.state == "QUEUED" else 0,
        playlist=common_pb2.ObjectRef(key=r.playlist_key) if r.playlist_key else None,
        first_playable_s=r.first_playable_s,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )
