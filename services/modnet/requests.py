"""Request messages of MattingService -> the plain values of compose / background (servicer layer).

Also the canonical parameter dicts that go into content-addressed output keys, so that two requests
meaning the same thing (e.g. scale 0 = unset = 1) share their outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lihq import precision as precisions
from lihq.errors import InvalidInput
from lihq.v1 import common_pb2, matting_pb2
from services.modnet.background import BackgroundSpec
from services.modnet.compose import Placement, parse_color

_FIT = {
    matting_pb2.BACKGROUND_FIT_UNSPECIFIED: "stretch",
    matting_pb2.BACKGROUND_FIT_STRETCH: "stretch",
    matting_pb2.BACKGROUND_FIT_COVER: "cover",
}
_VIDEO_END = {
    matting_pb2.VIDEO_END_UNSPECIFIED: "loop",
    matting_pb2.VIDEO_END_LOOP: "loop",
    matting_pb2.VIDEO_END_HOLD: "hold",
    matting_pb2.VIDEO_END_ERROR: "error",
}
_ALPHA_FORMAT = {
    matting_pb2.ALPHA_FORMAT_UNSPECIFIED: "webm",
    matting_pb2.ALPHA_FORMAT_WEBM_VP9: "webm",
    matting_pb2.ALPHA_FORMAT_PRORES_4444: "prores",
}
DEFAULT_COLOR = (255, 255, 255)  # LIHQ pastes the speaker on white


def _enum(table: dict[int, str], value: int, what: str) -> str:
    if value not in table:
        raise InvalidInput(f"unknown {what} {value}")
    return table[value]


def precision(value: int, default: str) -> str:
    """PRECISION_UNSPECIFIED -> the deployment's default (lihq.precision.from_proto)."""
    return precisions.from_proto(value, default)


def alpha_format(value: int) -> str:
    return _enum(_ALPHA_FORMAT, value, "alpha format")


def placement(p: matting_pb2.Placement) -> Placement:
    return Placement(
        scale=p.scale if p.scale != 0 else 1.0,
        offset_x=int(p.offset_x),
        offset_y=int(p.offset_y),
        rotation_deg=float(p.rotation_deg),
    )


def placement_params(p: Placement) -> dict[str, Any]:
    return {"scale": float(p.scale), "x": p.offset_x, "y": p.offset_y, "rot": float(p.rotation_deg) % 360.0}


def _kind(bg: matting_pb2.Background) -> str:
    return bg.WhichOneof("source") or "color"


def background_ref(bg: matting_pb2.Background) -> common_pb2.ObjectRef | None:
    """The object of an image / video background, else None."""
    kind = _kind(bg)
    return getattr(bg, kind) if kind in ("image", "video") else None


def background_params(bg: matting_pb2.Background) -> dict[str, Any]:
    """Everything about the background that changes the output, except the object's digest."""
    kind = _kind(bg)
    if bg.video_offset_s and kind != "video":
        raise InvalidInput("video_offset_s only applies to a video background")
    out: dict[str, Any] = {"kind": kind}
    if kind == "color":
        out["color"] = list(parse_color(bg.color) if bg.HasField("color") else DEFAULT_COLOR)
    else:
        out["fit"] = _enum(_FIT, bg.fit, "background fit")
    if kind == "video":
        out["offset"] = float(bg.video_offset_s)
        out["end"] = _enum(_VIDEO_END, bg.video_end, "video_end")
    return out


def background_spec(bg: matting_pb2.Background, path: Path | None) -> BackgroundSpec:
    """The BackgroundSpec of a request; `path` is the local copy of its image / video object."""
    p = background_params(bg)
    if p["kind"] == "color":
        return BackgroundSpec(kind="color", color=tuple(p["color"]))  # type: ignore[arg-type]
    return BackgroundSpec(
        kind=p["kind"],
        path=path,
        video_offset_s=p.get("offset", 0.0),
        fit=p["fit"],
        video_end=p.get("end", "loop"),
    )
