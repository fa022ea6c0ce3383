"""A render request as plain data, LIHQ's defaults, and the validation of every knob.

`RenderSpec` mirrors `lihq.v1.RenderSpec` (protos/lihq/v1/render.proto) without importing protos, so
the planner is pure code. `validate(spec)` returns every problem at once, each phrased so a user can
act on it; `check(spec)` raises them as one InvalidInput (INVALID_ARGUMENT at CreateRender).
Defaults follow LIHQ: 2 passes, wav2lip_gan, pads 0 20 0 0, GFPGAN v1.3, ×4 upscale, no
interpolation, no background, 25 fps, 50-frame segments.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace

from lihq.errors import InvalidInput

FPS = 25.0
WAV2LIP_CHECKPOINTS = ("wav2lip", "wav2lip_gan")
GFPGAN_VERSIONS = ("1.3", "1.4")
MAX_INTERPOLATE = 7
MAX_TEXT_CHARS = 20_000
# services/media/procedural_motion.py PRESETS (tests check they agree; the planner does not import the media stage)
MOTION_PRESETS = ("calm", "lively", "nodding", "still", "sway")
_HEX_COLOR = re.compile(r"^#?[0-9a-fA-F]{6}$")
_NAMED = {"green", "blue", "black", "white", "red", "gray", "grey"}


@dataclass(frozen=True)
class Background:
    """At most one source: a colour ('#00ff00' or a name), an image key, or a video key."""

    color: str = ""
    image_key: str = ""
    video_key: str = ""
    video_offset_s: float = 0.0
    speaker_scale: float = 1.0
    offset_x: int = 0
    offset_y: int = 0
    rotation_deg: float = 0.0

    @property
    def kind(self) -> str:
        return "color" if self.color else "image" if self.image_key else "video" if self.video_key else "none"


@dataclass(frozen=True)
class RenderSpec:
    face_key: str
    audio_key: str = ""
    text: str = ""
    voice: str = ""
    tts_backend: str = ""
    reference_video_key: str = ""
    reference_offset_s: float = 0.0
    passes: int = 2
    wav2lip_checkpoint: str = "wav2lip_gan"
    pads: tuple[int, int, int, int] = (0, 20, 0, 0)  # top, bottom, left, right
    gfpgan_version: str = "1.3"
    upscale: int = 4
    background_upsampler: bool = False
    interpolate: int = 0
    background: Background = field(default_factory=Background)
    paste_back: bool = False
    draft_seconds: float = 0.0
    seed: int = 0
    segment_frames: int = 50
    keep_lips: bool = False  # the reference video's own mouth: no Wav2Lip (needs a reference video)
    motion_preset: str = ""  # RenderSpec.motion: a procedural-motion preset, "" = sway (MOTION_PRESETS)
    reference_offset_random: bool = False  # pick reference_offset_s from the seed (choose_reference_offset)
    face_video: bool = False  # the face is a video (dubbing, issue #15): set from the file's header

    @property
    def fps_out(self) -> float:
        return FPS * (self.interpolate + 1)

    @property
    def motion(self) -> str:
        return "reference" if self.reference_video_key else "procedural"


def _speech_problems(s: RenderSpec) -> list[str]:
    out = []
    if bool(s.audio_key) == bool(s.text.strip()):
        out.append("give exactly one of audio or text")
    if s.text and len(s.text) > MAX_TEXT_CHARS:
        out.append(f"text is {len(s.text)} characters; the limit is {MAX_TEXT_CHARS}")
    if s.audio_key and (s.voice or s.tts_backend):
        out.append("voice / tts_backend apply to text only; drop them or send text instead of audio")
    return out


def _model_problems(s: RenderSpec) -> list[str]:
    out = []
    if s.passes not in (1, 2):
        out.append(f"passes={s.passes}: must be 1 or 2")
    if s.wav2lip_checkpoint not in WAV2LIP_CHECKPOINTS:
        out.append(
            f"wav2lip_checkpoint {s.wav2lip_checkpoint[:40]!r}: expected one of {', '.join(WAV2LIP_CHECKPOINTS)}"
        )
    if len(s.pads) != 4 or any(p < 0 or p > 128 for p in s.pads):
        out.append(f"pads {s.pads}: four values (top bottom left right), each in [0, 128]")
    if s.gfpgan_version not in GFPGAN_VERSIONS:
        out.append(f"gfpgan_version {s.gfpgan_version[:40]!r}: expected one of {', '.join(GFPGAN_VERSIONS)}")
    if s.upscale not in (1, 2, 3, 4):
        out.append(f"upscale={s.upscale}: must be 1, 2, 3 or 4 (256² → up to 1024²)")
    if not 0 <= s.interpolate <= MAX_INTERPOLATE:
        out.append(f"interpolate={s.interpolate}: frames between each pair, 0 (off) to {MAX_INTERPOLATE}")
    if not 1 <= s.segment_frames <= 1000:
        out.append(f"segment_frames={s.segment_frames}: must be in [1, 1000]")
    return out


def _motion_problems(s: RenderSpec) -> list[str]:
    out = []
    if not math.isfinite(s.reference_offset_s) or s.reference_offset_s < 0:
        out.append(f"reference_offset_s={s.reference_offset_s}: must be >= 0")
    if s.reference_offset_s and not s.reference_video_key:
        out.append("reference_offset_s is set but no reference video was given")
    if not math.isfinite(s.draft_seconds) or s.draft_seconds < 0:
        out.append(f"draft_seconds={s.draft_seconds}: must be >= 0 (0 renders everything)")
    return out + _option_problems(s)


def _option_problems(s: RenderSpec) -> list[str]:
    """keep_lips, motion presets and the random reference offset (issue #15)."""
    out = []
    if s.keep_lips and not s.reference_video_key:
        out.append(
            "keep_lips needs a reference video whose speaker says the same words (without one, Wav2Lip "
            "must make the mouth)"
        )
    if s.motion_preset and s.motion_preset not in MOTION_PRESETS:
        out.append(f"motion {s.motion_preset[:40]!r}: expected one of {', '.join(MOTION_PRESETS)}")
    elif s.motion_preset and s.reference_video_key:
        out.append(
            f"motion {s.motion_preset!r} shapes procedural motion only; with a reference video the video "
            "moves the head (drop one of them)"
        )
    if s.reference_offset_random and not s.reference_video_key:
        out.append("reference_offset_random (--offset random) needs a reference video")
    return out


def choose_reference_offset(seed: int, reference_s: float, need_s: float) -> float:
    """The start `reference_offset_random` picks: uniform in [0, reference_s - need_s], a pure function of
    (seed, the two lengths), floored to whole milliseconds so that printing it and passing it back as
    reference_offset_s repeats the render exactly. A reference shorter than need_s gives 0 (the length
    check then refuses it)."""
    span = reference_s - need_s
    if not (math.isfinite(span) and span > 0):
        return 0.0
    digest = hashlib.sha256(f"lihq-reference-offset/1:{seed}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
    return math.floor(u * span * 1000) / 1000


def resolve_reference_offset(s: RenderSpec, reference_s: float, speech_s: float) -> RenderSpec:
    """With reference_offset_random, the spec with its chosen reference_offset_s (else `s` unchanged).
    The span leaves room for the whole speech and for the frame count's rounding (25 fps, half up)."""
    if not s.reference_offset_random:
        return s
    from lihq.media import frame_count

    need = max(speech_s, frame_count(speech_s, FPS) / FPS)
    return replace(s, reference_offset_s=choose_reference_offset(s.seed, reference_s, need))


def _background_problems(s: RenderSpec) -> list[str]:
    b, out = s.background, []
    sources = [x for x in (b.color, b.image_key, b.video_key) if x]
    if len(sources) > 1:
        out.append("background: give one of color, image or video")
    if b.color and not (_HEX_COLOR.match(b.color) or b.color.lower() in _NAMED):
        out.append(f"background color {b.color[:40]!r}: use #rrggbb or one of {', '.join(sorted(_NAMED))}")
    if not 0.1 <= b.speaker_scale <= 4.0:
        out.append(f"speaker_scale={b.speaker_scale}: must be in [0.1, 4]")
    if b.video_offset_s < 0 or (b.video_offset_s and not b.video_key):
        out.append("background video_offset_s must be >= 0 and needs a background video")
    if b.kind == "none" and (b.offset_x or b.offset_y or b.rotation_deg or b.speaker_scale != 1.0):
        out.append("speaker offset / scale / rotation need a background")
    if s.paste_back and b.kind != "none":
        out.append("paste_back and background are exclusive: the photo is the background when pasting back")
    return out


MAX_SEED = 2**32 - 1
MAX_OFFSET_PX = 8192
MAX_NAME_CHARS = 100


def _bounds_problems(s: RenderSpec) -> list[str]:
    """Numbers and names the other checks take for granted: finite, in range, short."""
    b, out = s.background, []
    if not 0 <= s.seed <= MAX_SEED:
        out.append(f"seed={s.seed}: must be in [0, {MAX_SEED}]")
    for name, v in (
        ("background video_offset_s", b.video_offset_s),
        ("rotation_deg", b.rotation_deg),
        ("speaker_scale", b.speaker_scale),
    ):
        if not math.isfinite(v):
            out.append(f"{name}={v}: must be a finite number")
    if math.isfinite(b.rotation_deg) and abs(b.rotation_deg) > 360:
        out.append(f"rotation_deg={b.rotation_deg}: must be in [-360, 360]")
    if abs(b.offset_x) > MAX_OFFSET_PX or abs(b.offset_y) > MAX_OFFSET_PX:
        out.append(f"speaker offset ({b.offset_x}, {b.offset_y}): each must be within ±{MAX_OFFSET_PX} px")
    for name, v in (("voice", s.voice), ("tts_backend", s.tts_backend)):
        if len(v) > MAX_NAME_CHARS or any(ord(c) < 32 for c in v):
            out.append(f"{name}: at most {MAX_NAME_CHARS} printable characters")
    return out


def _face_video_problems(s: RenderSpec) -> list[str]:
    """A face video keeps its own frames, motion and size: the options that reshape them do not apply."""
    if not s.face_video:
        return []
    clash = [
        name
        for name, on in (
            ("reference_video", bool(s.reference_video_key)),
            ("keep_lips", s.keep_lips),
            ("motion", bool(s.motion_preset)),
            ("interpolate", bool(s.interpolate)),
            ("background", s.background.kind != "none"),
            ("paste_back", s.paste_back),
        )
        if on
    ]
    if not clash:
        return []
    return [
        "face is a video (dubbing: its own frames, motion and size are kept); these options are for a "
        f"face image only: {', '.join(clash)}"
    ]


def validate(s: RenderSpec) -> list[str]:
    problems = [] if s.face_key else ["a face image is required"]
    problems += _face_video_problems(s)
    for part in (_speech_problems, _model_problems, _motion_problems, _background_problems, _bounds_problems):
        problems += part(s)
    return problems


def check(s: RenderSpec) -> RenderSpec:
    problems = validate(s)
    if problems:
        raise InvalidInput("invalid render: " + "; ".join(problems))
    return s


def with_defaults(s: RenderSpec) -> RenderSpec:
    """Fill zero values that mean 'default' on the wire (proto3 has no presence for scalars)."""
    return replace(
        s,
        passes=s.passes or 2,
        wav2lip_checkpoint=s.wav2lip_checkpoint or "wav2lip_gan",
        gfpgan_version=s.gfpgan_version or "1.3",
        upscale=s.upscale or 4,
        segment_frames=s.segment_frames or 50,
    )
