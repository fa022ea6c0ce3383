"""Tenants at RenderService: whose keys a request may name, whose renders a caller may see.

* Uploads of tenant T land under `tenants/T/inputs/<sha256>.<ext>` (orchestrator/uploads.py).
* A render spec of T may reference only T's uploads (`tenants/T/...`) and the outputs of T's own renders
  (`renders/<id>/output.mp4` where render <id> belongs to T). An admin token (the operator) may name any
  key of the store. The client never chooses the bucket.
* Each reference is checked at CreateRender, naming the field the user set: the key is well formed, the
  object exists, `ObjectRef.sha256` / `size` match when given, and a background image / video decodes as
  that kind within the pixel limit.
* Renders carry their tenant; another tenant's render id answers NOT_FOUND, exactly like an unknown id.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lihq.auth import Principal
from lihq.errors import InvalidInput, LihqError, NotFound, PermissionDenied
from lihq.storage.base import ObjectInfo, ObjectStore, validate_key

MAX_ECHO = 100
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_OUTPUT = re.compile(r"^renders/([A-Za-z0-9_-]{1,64})/output\.mp4$")
RENDER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def echo(value: str, limit: int = MAX_ECHO) -> str:
    """A user's value quoted for an error message, cut to `limit` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def tenant_prefix(tenant: str) -> str:
    return f"tenants/{tenant}/"


def uploads_prefix(tenant: str) -> str:
    return f"tenants/{tenant}/inputs"


def check_render_id(render_id: str) -> str:
    """Render ids are what CreateRender returned: 1-64 lower-case hex characters."""
    if not render_id:
        raise InvalidInput("render_id is empty: pass the id CreateRender returned")
    if len(render_id) > 64 or not RENDER_ID_RE.match(render_id):
        raise InvalidInput(
            f"render_id {echo(render_id, 40)} is not a render id (1-64 letters, digits, _ or -, as CreateRender returns)"
        )
    return render_id


def visible(principal: Principal, record_tenant: str) -> bool:
    return principal.admin or record_tenant == principal.tenant


def spec_refs(spec: Any) -> Iterator[tuple[str, Any, str]]:
    """(field name, ObjectRef, media kind) of every object a `lihq.v1.RenderSpec` names."""
    yield "face", spec.face, "image"
    if spec.WhichOneof("speech") == "audio":
        yield "audio", spec.audio, "audio"
    if spec.HasField("reference_video") and (spec.reference_video.key or spec.reference_video.sha256):
        yield "reference video", spec.reference_video, "video"
    src = spec.background.WhichOneof("source") if spec.HasField("background") else None
    if src == "image":
        yield "background image", spec.background.image, "image"
    elif src == "video":
        yield "background video", spec.background.video, "video"


class RefChecker:
    """Checks the object references of CreateRender for one caller (see the module docstring)."""

    def __init__(
        self, store: ObjectStore, principal: Principal, owner_of_render: Any, probe: Any = None
    ) -> None:
        self.store, self.principal = store, principal
        self.owner_of_render = owner_of_render  # render_id -> tenant ('' when unknown)
        self.probe = probe  # (path, kind) -> info with width/height; None: no decode check

    def check_spec(self, spec: Any, where: str = "") -> None:
        for what, ref, kind in spec_refs(spec):
            self.check_ref(where + what, ref, kind)

    def check_ref(self, what: str, ref: Any, kind: str) -> ObjectInfo:
        if ref.bucket and ref.bucket != self.store.bucket:
            raise InvalidInput(f"{what}: the server chooses the bucket; leave ObjectRef.bucket empty")
        if not ref.key:
            raise InvalidInput(f"{what}: an object key is required (UploadInput returns one)")
        try:
            key = validate_key(ref.key)
        except InvalidInput:
            raise InvalidInput(
                f"{what}: key {echo(ref.key)} is not a valid object key (relative, '/'-separated, "
                "letters, digits and . _ = + @ , -)"
            ) from None
        if ref.sha256 and not _HEX64.match(ref.sha256):
            raise InvalidInput(f"{what}: sha256 {echo(ref.sha256, 70)} is not 64 hex digits")
        if ref.size < 0:
            raise InvalidInput(f"{what}: size {ref.size} is negative")
        self._check_owner(what, key)
        try:
            info = self.store.stat(key)
        except NotFound:
            raise NotFound(f"{what}: no object at key {echo(key)} (upload it first)") from None
        if ref.size and ref.size != info.size:
            raise InvalidInput(f"{what}: size {ref.size} given, but the object has {info.size} bytes")
        if ref.sha256:
            actual = info.sha256 or self._digest(key)
            if actual.lower() != ref.sha256.lower():
                raise InvalidInput(
                    f"{what}: sha256 does not match the object's content ({actual}); upload the file again"
                )
        if self.probe is not None and what.startswith("background"):
            self._decode(what, key, kind)
        return info

    def _check_owner(self, what: str, key: str) -> None:
        if self.principal.admin:
            return
        if key.startswith(tenant_prefix(self.principal.tenant)):
            return
        m = _OUTPUT.match(key)
        if m and self.owner_of_render(m.group(1)) == self.principal.tenant:
            return
        # the same answer whether or not the object exists: nothing about other tenants leaks
        raise PermissionDenied(
            f"{what}: key {echo(key)} is not yours; use a key UploadInput returned to you or the output of "
            "one of your renders"
        )

    def _digest(self, key: str) -> str:
        h = hashlib.sha256()
        for chunk in self.store.iter_chunks(key, 1 << 20):
            h.update(chunk)
        return h.hexdigest()

    def _decode(self, what: str, key: str, kind: str) -> None:
        with tempfile.TemporaryDirectory(prefix="lihq-bg-") as tmp:
            path = Path(tmp) / "background"
            self.store.get_file(key, path)
            try:
                self.probe(path, kind)
            except LihqError as exc:
                msg = exc.message.replace(str(path), "the file").replace(tmp, "")
                raise type(exc)(f"{what}: {msg}") from None


def probe_media(path: Path, kind: str) -> Any:
    """Probe a background with the media stage's own checks (kind, decode, LIHQ_MEDIA pixel limits)."""
    from lihq.media.kinds import check_upload

    return check_upload(path, kind)  # the media stage's default limits


def with_face_kind(store: ObjectStore, spec: Any) -> Any:
    """`spec` (an orchestrator RenderSpec) with `face_video` set from the face object's header: a video
    container's signature (services/media/video_face.py looks_like_video), else ffprobe of the file
    when the header is not one it knows. Cheap: one 4 KiB read for every image and common video. A face
    that cannot be read keeps the image path, whose first task names the problem. A video face with
    options for images only is INVALID_ARGUMENT here."""
    from dataclasses import replace

    from lihq.media.kinds import is_video_file, looks_like_video
    from orchestrator.spec import check, with_defaults

    if not spec.face_key:
        return spec
    try:
        head = next(store.iter_chunks(spec.face_key, 4096), b"")[:4096]
        video = looks_like_video(head)
        if video is None:
            with tempfile.TemporaryDirectory(prefix="lihq-face-") as tmp:
                path = Path(tmp) / "face"
                store.get_file(spec.face_key, path)
                video = is_video_file(path)
    except LihqError:
        return replace(spec, face_video=False)
    out = replace(spec, face_video=bool(video))
    if out.face_video:
        check(with_defaults(out))
    return out
