"""Frame-pack codec benchmark: bytes vs encode/decode time for one 50-frame segment.

Run: `python bench/framepack_bench.py` (about 3 minutes on 2 cores); `--help` for sizes/runs/codecs.
Every codec is checked to round-trip exactly (lossless) before its figures are printed.

Content. Frames between stages are talking-head video: a face that moves a little from frame to frame
over a mostly static background, with the fine texture that GFPGAN / FOMM output carries. We use
`skimage.data.astronaut()` (a real portrait photo) when scikit-image is importable; otherwise a
synthetic face-like image (smooth shaded background and skin, eyes, mouth, hair with fine band-limited
texture). Each frame applies a smooth head motion (whole-frame warp: translation up to +-10 px and
rotation up to +-1.5 deg at 1024^2, about 1-3 px per frame; bilinear, so every pixel changes a little,
as in FOMM output), a mouth opening that follows a "speech" curve, and, in the `grain` variant, fresh
Gaussian noise (sigma 1.5 levels: sensor grain / GAN texture that differs in every frame, a
pessimistic bound). `clean` has no per-frame noise: an optimistic bound. Real stage output lies
between. 256^2 frames are the 1024^2 ones downscaled (INTER_AREA), as stage outputs at 256^2 are.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import zstandard

try:
    import lz4.frame as lz4f
except ImportError:  # lz4 is in the `bench` extra
    lz4f = None

Frames = np.ndarray  # (N, H, W, 3) uint8 RGB


# --------------------------------------------------------------------------- content
def _base_photo(size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """A (size, size, 3) uint8 RGB portrait and the mouth centre (x, y)."""
    try:
        from skimage import data  # optional; see module docstring

        img = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC)
        return img, (int(size * 0.48), int(size * 0.36))
    except ImportError:
        return _synthetic_face(size, rng), (size // 2, int(size * 0.68))


def _synthetic_face(size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([60 + 80 * yy, 90 + 60 * xx, 140 + 40 * (1 - yy)], axis=-1)  # backdrop
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), size / 400)
    hair = ((xx - 0.5) ** 2 / 0.17 + (yy - 0.42) ** 2 / 0.16) < 1
    img[hair] = np.array([70, 45, 30], np.float32) + 40 * texture[hair, None]
    face = ((xx - 0.5) ** 2 / 0.09 + (yy - 0.52) ** 2 / 0.14) < 1
    shade = 1.0 - 0.6 * np.hypot(xx - 0.45, yy - 0.45)
    skin = np.array([225, 175, 150], np.float32) * shade[..., None] + 6 * texture[..., None]
    img[face] = skin[face]
    for ex in (0.4, 0.6):
        eye = ((xx - ex) ** 2 / 0.003 + (yy - 0.47) ** 2 / 0.0008) < 1
        img[eye] = (240, 240, 235)
        iris = np.hypot(xx - ex, yy - 0.47) < 0.018
        img[iris] = (60, 90, 50)
    img = cv2.GaussianBlur(img, (0, 0), size / 700)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_segment(size: int, n: int, *, grain: bool, seed: int = 0) -> Frames:
    """`n` frames of a talking-head-like clip at 1024^2, downscaled to `size` (see module docstring)."""
    rng = np.random.default_rng(seed)
    full = 1024
    base, (mx, my) = _base_photo(full, rng)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        frame = base.copy()
        opening = int(full * 0.012 * (1 + np.sin(i * 0.9)) + 2)
        cv2.ellipse(frame, (mx, my), (int(full * 0.07), opening), 0, 0, 360, (110, 40, 45), -1)
        angle = 1.5 * np.sin(i * 0.21)  # degrees; with the shifts: ~1-3 px per frame at 1024^2
        m = cv2.getRotationMatrix2D((full / 2, full / 2), angle, 1.0)
        m[:, 2] += (10.0 * np.sin(i * 0.13), 6.0 * np.cos(i * 0.17))
        frame = cv2.warpAffine(frame, m, (full, full), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if size != full:
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        if grain:
            noisy = frame.astype(np.float32) + rng.normal(0, 1.5, frame.shape).astype(np.float32)
            frame = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        out[i] = frame
    return out


# --------------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[Frames], bytes]
    decode: Callable[[bytes, tuple[int, ...]], Frames]


def _up(f: Frames) -> Frames:
    """PNG's "Up" filter on every frame: row y minus row y-1, per channel, mod 256."""
    d = np.empty_like(f)
    d[:, 0] = f[:, 0]
    np.subtract(f[:, 1:], f[:, :-1], out=d[:, 1:])
    return d


def _undo_up(d: Frames) -> Frames:
    for y in range(1, d.shape[1]):
        d[:, y] += d[:, y - 1]
    return d


def _temporal(f: Frames) -> Frames:
    """Frame i minus frame i-1, mod 256."""
    d = np.empty_like(f)
    d[0] = f[0]
    np.subtract(f[1:], f[:-1], out=d[1:])
    return d


def _undo_temporal(d: Frames) -> Frames:
    for i in range(1, d.shape[0]):
        d[i] += d[i - 1]
    return d


_FILTERS: dict[str, tuple[Callable[[Frames], Frames], Callable[[Frames], Frames]]] = {
    "": (lambda f: f, lambda d: d),
    " on vertical deltas": (_up, _undo_up),
    " on temporal deltas": (_temporal, _undo_temporal),
}


def _zstd(level: int, threads: int, flt: str = "") -> Codec:
    fwd, inv = _FILTERS[flt]

    def enc(f: Frames) -> bytes:
        cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        return cctx.compress(fwd(f).data)

    def dec(b: bytes, shape: tuple[int, ...]) -> Frames:
        out = np.empty(shape, np.uint8)
        with zstandard.ZstdDecompressor().stream_reader(b) as r:
            r.readinto(memoryview(out).cast("B"))
        return inv(out)

    t = f", {threads} threads" if threads else ""
    return Codec(f"zstd -{level}{flt}{t}", enc, dec)


def _lz4(flt: str = "") -> Codec:
    fwd, inv = _FILTERS[flt]

    def enc(f: Frames) -> bytes:
        return lz4f.compress(fwd(f).data, store_size=True)

    def dec(b: bytes, shape: tuple[int, ...]) -> Frames:
        return inv(np.frombuffer(lz4f.decompress(b), np.uint8).reshape(shape).copy())

    return Codec(f"lz4{flt}", enc, dec)


def _ffv1() -> Codec:
    """FFV1 (lossless, level 3, 4 slices, 2 threads) in Matroska, through ffmpeg pipes (gbrp: lossless)."""

    def enc(f: Frames) -> bytes:
        n, h, w, _ = f.shape
        cmd = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
        cmd += ["-i", "pipe:", "-c:v", "ffv1", "-level", "3", "-slices", "4", "-threads", "2"]
        cmd += ["-pix_fmt", "gbrp", "-f", "matroska", "pipe:"]
        return subprocess.run(cmd, input=f.tobytes(), capture_output=True, check=True).stdout

    def dec(b: bytes, shape: tuple[int, ...]) -> Frames:
        cmd = ["ffmpeg", "-v", "error", "-threads", "2", "-f", "matroska", "-i", "pipe:"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
        out = subprocess.run(cmd, input=b, capture_output=True, check=True).stdout
        return np.frombuffer(out, np.uint8).reshape(shape)

    return Codec("FFV1 in MKV (ffmpeg)", enc, dec)


def _png(level: int) -> Codec:
    def enc(f: Frames) -> bytes:
        parts = [cv2.imencode(".png", fr[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, level])[1] for fr in f]
        lens = np.array([len(p) for p in parts], np.uint32)
        return lens.tobytes() + b"".join(p.tobytes() for p in parts)

    def dec(b: bytes, shape: tuple[int, ...]) -> Frames:
        lens = np.frombuffer(b[: 4 * shape[0]], np.uint32)
        out, pos = np.empty(shape, np.uint8), 4 * shape[0]
        for i, n in enumerate(lens):
            img = cv2.imdecode(np.frombuffer(b[pos : pos + int(n)], np.uint8), cv2.IMREAD_COLOR)
            out[i] = img[..., ::-1]
            pos += int(n)
        return out

    return Codec(f"PNG per frame (level {level})", enc, dec)


def _framepack() -> Codec:
    from lihq.framepack import pack_frames, unpack_frames

    return Codec(
        "lihq.framepack (chosen)",
        lambda f: pack_frames(f, fps=25.0, start=0),
        lambda b, shape: unpack_frames(b).frames,
    )


def all_codecs() -> list[Codec]:
    up, temporal = " on vertical deltas", " on temporal deltas"
    codecs = [_zstd(1, 0), _zstd(3, 0), _zstd(1, 2), _zstd(3, 2)]
    codecs += [_zstd(1, 0, up), _zstd(1, 2, up), _zstd(3, 2, up), _zstd(1, 2, temporal)]
    if lz4f is not None:
        codecs += [_lz4(), _lz4(up)]
    return codecs + [_ffv1(), _png(1), _framepack()]


# --------------------------------------------------------------------------- measurement
def _time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0, result


def measure(codec: Codec, frames: Frames, runs: int) -> tuple[int, float, float]:
    """(bytes, encode ms, decode ms), medians over `runs`; raises if the round trip is not exact."""
    enc_ms, blob = _time(lambda: codec.encode(frames), runs)
    dec_ms, back = _time(lambda: codec.decode(blob, frames.shape), runs)  # type: ignore[arg-type]
    if not np.array_equal(back, frames):
        raise AssertionError(f"{codec.name} is not lossless")
    return len(blob), enc_ms, dec_ms  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs")
    ap.add_argument("--content", nargs="+", default=["grain", "clean"], choices=["grain", "clean"])
    ap.add_argument("--only", nargs="*", default=None, help="substrings of codec names to run")
    args = ap.parse_args()
    codecs = [c for c in all_codecs() if not args.only or any(s in c.name for s in args.only)]
    print("| content | size | codec | bytes | ratio vs raw | encode ms | decode ms |")
    print("|---|---|---|---:|---:|---:|---:|")
    for content in args.content:
        for size in args.sizes:
            frames = make_segment(size, args.frames, grain=content == "grain")
            raw = frames.nbytes
            print(f"| {content} | {size}² | raw uint8 | {raw:,} | 1.00 | - | - |", flush=True)
            for c in codecs:
                nbytes, enc, dec = measure(c, frames, args.runs)
                print(
                    f"| {content} | {size}² | {c.name} | {nbytes:,} | {raw / nbytes:.2f} "
                    f"| {enc:.0f} | {dec:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
