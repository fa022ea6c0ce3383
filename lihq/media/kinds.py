"""What kind of media a file is, and the checks an upload must pass to serve as one: used by the media
stage (services/media/runner.py) and by RenderService's cheap creation checks (orchestrator/tenancy.py),
so both answer the same."""

from __future__ import annotations

from pathlib import Path

from lihq import media
from lihq.errors import InvalidInput

KINDS = ("any", "image", "audio", "video")
MAX_SIDE = 8192  # pixels, either side: the media stage's default limit (MediaRunnerConfig.max_side)
MAX_DURATION_S = 3600.0  # seconds: its default max_duration_s
IMAGE_CODECS = {"png", "mjpeg", "jpegls", "bmp", "tiff", "webp", "gif", "jpeg2000", "ppm", "pgm", "pam"}


def check_upload(
    path: Path, kind: str, max_side: int = MAX_SIDE, max_duration_s: float = MAX_DURATION_S
) -> media.MediaInfo:
    """Probe and check that the file can serve as `kind` ('any', 'image', 'audio', 'video')."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown media kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind in ("image", "any"):
        check_image_header(path, max_side)
    info = media.probe(
        path,
        require_video=kind in ("image", "video"),
        require_audio=kind == "audio",
        max_width=max_side,
        max_height=max_side,
        max_duration=max_duration_s,
    )
    is_image = (info.video_codec or "") in IMAGE_CODECS and info.n_frames <= 1
    if kind == "image":
        if not is_image:
            raise InvalidInput(
                f"expected an image, got {info.format_name} with a {info.video_codec} video stream"
            )
        media.load_image(path)  # decodes fully: catches truncated files ffprobe accepts
    if kind == "video" and (is_image or info.duration <= 0):
        raise InvalidInput("expected a video with a duration; this looks like a still image")
    return info


def check_image_header(path: Path, max_side: int) -> None:
    """An image's size from its header, before ffprobe (which gives no size for a huge PNG): one
    over the limit is refused naming the limit."""
    from PIL import Image

    m = max_side
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise InvalidInput(
            f"the image has more pixels than the largest supported, {m}x{m} (scale it down first)"
        ) from None
    except Exception:  # noqa: BLE001 - not an image PIL knows: ffprobe decides below
        return
    if w > m or h > m:
        raise InvalidInput(
            f"the image is {w}x{h} pixels; the largest supported is {m}x{m} (scale it down first)"
        )


def looks_like_video(head: bytes) -> bool | None:
    """From a file's first bytes: True for a video container, False for an image, None when unsure.

    Cheap (no decode): images are what PIL recognises; video containers by their signatures (ISO
    BMFF `ftyp` — mp4/mov/m4v/3gp —, Matroska/WebM, AVI, FLV, MPEG-TS/PS, Ogg, ASF)."""
    import io

    from PIL import Image

    if head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return True
    if head[:4] in (b"\x1a\x45\xdf\xa3", b"FLV\x01", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    if head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"):
        return True
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return True
    try:
        with Image.open(io.BytesIO(head)):
            return False
    except Exception:  # noqa: BLE001 - not an image PIL knows from its header
        return None


def is_video_file(path: str | Path) -> bool:
    """A local face file is a video: by its header, else by ffprobe (a video stream of > 1 frame)."""
    with open(path, "rb") as f:
        verdict = looks_like_video(f.read(4096))
    if verdict is not None:
        return verdict
    try:
        info = media.probe(path, require_video=True)
    except Exception:  # noqa: BLE001 - not decodable: the image path reports it
        return False
    return not info.is_image and info.n_frames > 1
