"""A face or background image over the pixel limit is refused naming the limit (ffprobe reports no
size for a huge PNG, so the header is read first)."""

from __future__ import annotations

import struct
import zlib

import pytest

from lihq.errors import InvalidInput
from services.media.runner import MediaRunner


def png_header(path, w: int, h: int):
    """A PNG declaring w×h whose data holds one row: as cheap to make as a hostile upload is."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (3 * w + 1))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.mark.parametrize(("w", "h", "needle"), [(20000, 20000, "8192x8192"), (9000, 64, "9000x64 pixels")])
def test_an_image_over_the_pixel_limit_names_the_limit(tmp_path, w, h, needle):
    with pytest.raises(InvalidInput, match=needle) as ei:
        MediaRunner().probe_upload(png_header(tmp_path / "big.png", w, h), "image")
    assert "largest supported" in ei.value.message and str(tmp_path) not in ei.value.message
