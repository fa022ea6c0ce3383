"""Frame packs: the one object format for frames travelling between stages (docs/architecture.md §3).

A pack holds one segment: lossless uint8 RGB frames (N, H, W, 3) plus a fixed header. The codec,
chosen by measurement (bench/README.md), is zstd level 1 (2 worker threads) over each frame's
vertical deltas (PNG's "Up" predictor: row y minus row y-1, per channel, mod 256). See the README
for the table and the reasons.

Layout (little-endian), version 1:

    offset size field
    0      8    magic  b"LIHQFPK\\x00"
    8      2    version (1)
    10     2    codec id (1 = PNG "Up" row deltas, then one zstd frame with checksum + content size)
    12     2    header length in bytes (64), so later versions can append fields
    14     2    channels (3)
    16     8    fps (float64, > 0)
    24     8    start: index of the first frame on the output timeline
    32     4    count N
    36     4    height H
    40     4    width W
    44     8    raw length N*H*W*3
    52     8    payload length (compressed bytes that follow the header)
    60     4    CRC-32 of bytes 0..59
    64     ...  payload

Empty packs (N = 0) are allowed: they keep H and W, and round-trip to shape (0, H, W, 3).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

from lihq.errors import InvalidInput

MAGIC = b"LIHQFPK\x00"
VERSION = 1
CODEC_ZSTD_UP = 1
_HEADER = struct.Struct("<8sHHHHdQIIIQQ")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _CRC.size  # 64
# zstd level 1 with 2 worker threads (bench/README.md). Worker count >= 1 keeps the output bytes the
# same on every machine (zstd's multithreaded format does not depend on the number of workers).
_LEVEL = 1
_THREADS = 2
_NOT_A_PACK = "not a LIHQ frame pack"


@dataclass(frozen=True)
class FramePack:
    """A decoded pack: `frames` (count, height, width, 3) uint8 RGB; `start` is the index of
    frames[0] on the output timeline, so the pack covers [start, end)."""

    frames: np.ndarray
    fps: float
    start: int

    @property
    def count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def end(self) -> int:
        return self.start + self.count


def _check_pack_args(frames: np.ndarray, fps: float, start: int) -> None:
    if not isinstance(frames, np.ndarray):
        raise InvalidInput(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise InvalidInput(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise InvalidInput(f"frames must have shape (N, H, W, 3) (RGB), got {frames.shape}")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise InvalidInput(f"frames must be at least 1x1 pixels, got {frames.shape}")
    if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise InvalidInput(f"fps must be a finite number > 0, got {fps!r}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise InvalidInput(f"start must be an integer >= 0, got {start!r}")
    if frames.shape[0] >= 2**32 or frames.shape[1] >= 2**32 or frames.shape[2] >= 2**32:
        raise InvalidInput(f"frames too large for a pack: {frames.shape}")


def _up_filter(frame: np.ndarray, out: np.ndarray) -> np.ndarray:
    """PNG's "Up" predictor: out[y] = frame[y] - frame[y-1] (mod 256, per channel); out[0] = frame[0]."""
    out[0] = frame[0]
    np.subtract(frame[1:], frame[:-1], out=out[1:])
    return out


def _undo_up_filter(frames: np.ndarray) -> None:
    """Invert `_up_filter` in place on (N, H, W, 3): a running sum down the rows (mod 256)."""
    for y in range(1, frames.shape[1]):
        frames[:, y] += frames[:, y - 1]


def pack_frames(frames: np.ndarray, *, fps: float, start: int = 0) -> bytes:
    """Serialize (N, H, W, 3) uint8 RGB frames, losslessly, into one frame-pack object.

    `fps` > 0 and `start` >= 0 (index of frames[0] on the output timeline) go into the header.
    Frames are filtered and compressed one at a time (no second full-size copy is made).
    Wrong dtype/shape or bad fps/start -> InvalidInput.
    """
    _check_pack_args(frames, fps, start)
    n, h, w, c = frames.shape
    raw_len = n * h * w * c
    cctx = zstandard.ZstdCompressor(level=_LEVEL, threads=_THREADS, write_checksum=True)
    cobj = cctx.compressobj(size=raw_len)
    scratch = np.empty((h, w, c), np.uint8)
    chunks = [cobj.compress(memoryview(_up_filter(f, scratch).reshape(-1))) for f in frames]
    chunks.append(cobj.flush())
    payload_len = sum(len(x) for x in chunks)
    head = _HEADER.pack(
        MAGIC, VERSION, CODEC_ZSTD_UP, HEADER_SIZE, c, float(fps), int(start), n, h, w, raw_len, payload_len
    )
    return b"".join([head, _CRC.pack(zlib.crc32(head)), *chunks])


@dataclass(frozen=True)
class _Header:
    fps: float
    start: int
    shape: tuple[int, int, int, int]
    raw_len: int
    payload_len: int
    header_len: int


def _read_header(data: bytes | bytearray | memoryview) -> _Header:
    if len(data) < HEADER_SIZE:
        raise InvalidInput(f"{_NOT_A_PACK}: {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    fields = _HEADER.unpack_from(data, 0)
    magic, version, codec, header_len, c, fps, start, n, h, w, raw_len, payload_len = fields
    if magic != MAGIC:
        raise InvalidInput(f"{_NOT_A_PACK}: bad magic {bytes(magic)!r}")
    (crc,) = _CRC.unpack_from(data, _HEADER.size)
    if crc != zlib.crc32(bytes(data[: _HEADER.size])):
        raise InvalidInput(f"{_NOT_A_PACK}: header checksum mismatch (corrupt header)")
    if version != VERSION:
        raise InvalidInput(
            f"{_NOT_A_PACK} of a supported version: version {version}, this build reads {VERSION}"
        )
    if codec != CODEC_ZSTD_UP:
        raise InvalidInput(f"unsupported LIHQ frame pack codec id {codec}")
    if header_len < HEADER_SIZE or c != 3 or h < 1 or w < 1 or not (fps > 0 and math.isfinite(fps)):
        raise InvalidInput(f"{_NOT_A_PACK}: inconsistent header (shape {n}x{h}x{w}x{c}, fps {fps})")
    if raw_len != n * h * w * c:
        raise InvalidInput(f"{_NOT_A_PACK}: header raw length {raw_len} != {n}x{h}x{w}x{c}")
    return _Header(fps, start, (n, h, w, c), raw_len, payload_len, header_len)


def _decompress(payload: memoryview, hdr: _Header) -> np.ndarray:
    """Decompress straight into a new writable (N, H, W, 3) array, checking the size on the way."""
    try:
        content_size = zstandard.get_frame_parameters(payload).content_size
    except zstandard.ZstdError as e:
        raise InvalidInput(f"{_NOT_A_PACK}: corrupt payload ({e})") from None
    if content_size != hdr.raw_len:
        raise InvalidInput(f"{_NOT_A_PACK}: payload holds {content_size} bytes, header says {hdr.raw_len}")
    out = np.empty(hdr.shape, np.uint8)
    dest = memoryview(out.reshape(-1))
    got = 0
    try:
        with zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=False) as r:
            while got < hdr.raw_len:
                n = r.readinto(dest[got:])
                if not n:
                    break
                got += n
            extra = r.read(1)
    except zstandard.ZstdError as e:
        raise InvalidInput(f"{_NOT_A_PACK}: corrupt payload ({e})") from None
    if got != hdr.raw_len or extra:
        raise InvalidInput(
            f"{_NOT_A_PACK}: payload decompressed to the wrong size (header says {hdr.raw_len})"
        )
    return out


def unpack_frames(data: bytes | bytearray | memoryview) -> FramePack:
    """Read a frame pack written by `pack_frames`; returns a FramePack with writable frames.

    Bad magic, unsupported version/codec, truncated or corrupt data, or a decompressed size that does
    not match the header -> InvalidInput ("not a LIHQ frame pack: ...").
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"{_NOT_A_PACK}: expected bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    hdr = _read_header(view)
    body = len(view) - hdr.header_len
    if body != hdr.payload_len:
        what = "truncated" if body < hdr.payload_len else "trailing bytes after the payload"
        raise InvalidInput(f"{_NOT_A_PACK}: {what} ({body} payload bytes, header says {hdr.payload_len})")
    frames = _decompress(view[hdr.header_len :], hdr)
    _undo_up_filter(frames)
    return FramePack(frames=frames, fps=hdr.fps, start=int(hdr.start))
