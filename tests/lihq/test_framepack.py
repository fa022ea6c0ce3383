"""lihq.framepack: exact round trips, header fields, and typed rejection of bad input and bad data."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from lihq import framepack
from lihq.errors import InvalidInput
from lihq.framepack import FramePack, pack_frames, unpack_frames


def smooth(n: int, h: int, w: int) -> np.ndarray:
    """Gradients that drift a little per frame: compressible, like video."""
    yy, xx = np.mgrid[0:h, 0:w]
    t = np.arange(n)[:, None, None]
    r = (xx[None] * 3 + t) % 256
    g = (yy[None] * 2 + 2 * t) % 256
    b = (xx[None] + yy[None]) % 256 + 0 * t
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def noise(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 33, 17), (50, 64, 64), (4, 255, 129)])
@pytest.mark.parametrize("content", [smooth, noise])
def test_round_trip_is_exact(shape: tuple[int, int, int], content) -> None:
    frames = content(*shape)
    pack = unpack_frames(pack_frames(frames, fps=25.0, start=100))
    assert isinstance(pack, FramePack)
    assert pack.frames.dtype == np.uint8 and pack.frames.shape == (*shape, 3)
    np.testing.assert_array_equal(pack.frames, frames)


def test_header_fields_and_properties() -> None:
    frames = smooth(7, 24, 40)
    data = pack_frames(frames, fps=29.97, start=350)
    assert data[:8] == framepack.MAGIC
    pack = unpack_frames(data)
    assert (pack.count, pack.height, pack.width) == (7, 24, 40)
    assert (pack.fps, pack.start, pack.end) == (29.97, 350, 357)
    assert pack.frames.flags.writeable and pack.frames.flags.c_contiguous
    pack.frames[0, 0, 0] = 1  # writable: stages may work in place


def test_non_contiguous_input_and_determinism() -> None:
    frames = smooth(6, 40, 50)[:, ::2, ::-1]  # strided view
    data = pack_frames(frames, fps=25.0)
    np.testing.assert_array_equal(unpack_frames(data).frames, frames)
    assert pack_frames(frames, fps=25.0) == data
    assert unpack_frames(bytearray(data)).count == 6 and unpack_frames(memoryview(data)).count == 6


def test_smooth_frames_compress() -> None:
    frames = smooth(20, 64, 64)
    assert len(pack_frames(frames, fps=25.0)) < frames.nbytes / 4


def test_empty_pack_round_trips() -> None:
    pack = unpack_frames(pack_frames(np.zeros((0, 8, 12, 3), np.uint8), fps=25.0, start=50))
    assert pack.frames.shape == (0, 8, 12, 3) and (pack.start, pack.end, pack.count) == (50, 50, 0)


@pytest.mark.parametrize(
    ("frames", "kwargs", "message"),
    [
        (np.zeros((2, 4, 4, 3), np.float32), {}, "uint8"),
        (np.zeros((4, 4, 3), np.uint8), {}, r"\(N, H, W, 3\)"),
        (np.zeros((2, 4, 4, 4), np.uint8), {}, r"\(N, H, W, 3\)"),
        (np.zeros((2, 0, 4, 3), np.uint8), {}, "at least 1x1"),
        ([[[[0, 0, 0]]]], {}, "numpy array"),
        (np.zeros((1, 2, 2, 3), np.uint8), {"fps": 0.0}, "fps"),
        (np.zeros((1, 2, 2, 3), np.uint8), {"fps": float("nan")}, "fps"),
        (np.zeros((1, 2, 2, 3), np.uint8), {"fps": -25.0}, "fps"),
        (np.zeros((1, 2, 2, 3), np.uint8), {"start": -1}, "start"),
        (np.zeros((1, 2, 2, 3), np.uint8), {"start": 1.5}, "start"),
    ],
)
def test_pack_rejects_bad_input(frames, kwargs: dict, message: str) -> None:
    args = {"fps": 25.0, "start": 0} | kwargs
    with pytest.raises(InvalidInput, match=message):
        pack_frames(frames, **args)


def _reheader(data: bytes, **changes: int | float | bytes) -> bytes:
    """Rewrite header fields (with a valid CRC) to test the checks behind the CRC."""
    names = ["magic", "version", "codec", "header_len", "channels", "fps", "start", "n", "h", "w"]
    names += ["raw_len", "payload_len"]
    fields = dict(zip(names, framepack._HEADER.unpack_from(data), strict=True)) | changes
    head = framepack._HEADER.pack(*(fields[k] for k in names))
    return head + struct.pack("<I", zlib.crc32(head)) + data[framepack.HEADER_SIZE :]


@pytest.fixture(scope="module")
def good() -> bytes:
    return pack_frames(smooth(5, 16, 20), fps=25.0, start=10)


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "shorter than the 64-byte header"),
        (lambda d: d[:40], "shorter than the 64-byte header"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d[: framepack.HEADER_SIZE + 3], "truncated"),
        (lambda d: d + b"\0", "trailing bytes"),
        (lambda d: np.random.default_rng(1).bytes(500), "bad magic"),
        (lambda d: b"PK\x03\x04" + d[4:], "bad magic"),
        (lambda d: _flip(d, 30), "header checksum"),
        (lambda d: _flip(d, len(d) - 10), "corrupt payload"),
        (lambda d: _flip(d, framepack.HEADER_SIZE + 1), "corrupt payload|payload holds"),
        (lambda d: _reheader(d, version=2), "version 2"),
        (lambda d: _reheader(d, codec=9), "codec id 9"),
        (lambda d: _reheader(d, channels=4), "inconsistent header"),
        (lambda d: _reheader(d, fps=0.0), "inconsistent header"),
        (lambda d: _reheader(d, raw_len=7), "raw length"),
        (lambda d: _reheader(d, n=4, raw_len=4 * 16 * 20 * 3), "payload holds"),
    ],
)
def test_unpack_rejects_bad_data(good: bytes, mangle, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        unpack_frames(mangle(good))
    assert "frame pack" in str(err.value)


def test_unpack_rejects_non_bytes() -> None:
    with pytest.raises(InvalidInput, match="not a LIHQ frame pack"):
        unpack_frames("hello")  # type: ignore[arg-type]
