"""CPU seconds per frame that each stage spends outside its networks, vs the GPU target's budget.

Run: `python bench/cpu_per_frame_bench.py [--frames 8] [--only gfpgan ...]` (CPU, about a minute).

Every step is timed in CPU seconds of this process (time.process_time) with torch and OpenCV held to
ONE thread, so a figure is the work one core does per frame at production size, whatever else runs
on the machine. The networks are not timed (on a GPU they run there); what is timed is what stays on
the host per frame: frame-pack decode/encode between stages (lihq.framepack), uint8 <-> float
conversions and host<->device layout work, crops/warps/resizes, masks, GFPGAN's paste-back at 1024²,
colour conversion, H.264 encode (ffmpeg's own CPU time, children included).

Budget: a replica meeting the issue's H100 target T frames/s on its GPU may spend at most
`cores / T` CPU seconds per frame, with `cores` = the replica's num_cpus in
k8s/overlays/gpu/serve-config.yaml (a GPU pod has 8 CPUs). `caps at` = the frames/s one replica
reaches when its CPU work is the limit (cores / CPU s per frame, assuming the work parallelises over
those cores, which the paste-back thread pool and zstd's 2 workers do). The table in bench/README.md
("CPU work per frame") comes from this script.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# stage -> (H100 target frames/s, num_cpus per replica in the GPU serve config)
TARGETS = {
    "fomm": (300, 2),
    "wav2lip": (2000, 2),
    "gfpgan": (150, 2),
    "modnet": (1000, 1),
    "qvi": (60, 1),
    "media": (25 * 60 / 15, 2),  # 60 s of video in 15 s: 100 frames/s through the encode
}


def cpu_time(fn: Callable[[], object], reps: int = 3) -> float:
    """Least CPU seconds of `fn` over reps (this process + waited-for children)."""
    best = float("inf")
    for _ in range(reps):
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.process_time()
        fn()
        c2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        kids = (c2.ru_utime + c2.ru_stime) - (c.ru_utime + c.ru_stime)
        best = min(best, time.process_time() - t0 + kids)
    return best


def frames_of(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Image-like frames (smooth content + mild noise), so codecs and filters see realistic data."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    out = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in small])
    return np.clip(out.astype(np.int16) + rng.integers(-3, 4, out.shape), 0, 255).astype(np.uint8)


def rows_framepack(n: int) -> list[tuple[str, str, float]]:
    from lihq.framepack import pack_frames, unpack_frames

    out = []
    for size in (256, 1024):
        f = frames_of(n, size)
        blob = pack_frames(f, fps=25.0)
        out.append(("all", f"frame pack encode {size}²", cpu_time(lambda f=f: pack_frames(f, fps=25.0)) / n))
        out.append(("all", f"frame pack decode {size}²", cpu_time(lambda b=blob: unpack_frames(b)) / n))
    return out


def rows_fomm(n: int) -> list[tuple[str, str, float]]:
    from services.fomm import keypoints as motion

    f = frames_of(n, 256)
    pred = torch.rand(n, 3, 256, 256)
    return [
        ("fomm", "uint8 -> float input 256²", cpu_time(lambda: motion.to_model_input(f, 256)) / n),
        ("fomm", "prediction -> uint8 256² (host)", cpu_time(lambda: motion.to_uint8(pred).numpy()) / n),
    ]


def rows_wav2lip(n: int) -> list[tuple[str, str, float]]:
    from services.wav2lip.faces import crop_faces, face_windows, paste_faces

    f = frames_of(n, 256)
    boxes = np.tile(np.array([[32, 240, 32, 224]]), (n, 1))
    faces = crop_faces(f, boxes)
    preds = faces.copy()
    return [
        ("wav2lip", "crop + resize faces to 96² (256² frames)", cpu_time(lambda: crop_faces(f, boxes)) / n),
        ("wav2lip", "6-channel windows (host)", cpu_time(lambda: face_windows(faces)) / n),
        ("wav2lip", "resize + paste 96² faces back", cpu_time(lambda: paste_faces(f, preds, boxes)) / n),
    ]


def rows_gfpgan(n: int) -> list[tuple[str, str, float]]:
    from services.gfpgan.detect import align_faces
    from services.gfpgan.paste import paste_frame
    from services.gfpgan.tensors import restorer_lut, to_bgr_uint8, to_tensor
    from tests.services.gfpgan.fakes import make_frames

    frames, dets = make_frames(n, 256, seed=0)
    per_frame = [[d[0, 5:15].reshape(5, 2)] for d in dets]
    template = np.array(
        [[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]]
    )
    faces, crops = align_faces(frames, per_frame, template, range(n))
    classes = np.zeros((n, 512, 512), np.uint8)
    classes[:, 100:420, 120:400] = 1  # a face-shaped region of "skin"
    x = to_tensor(crops, restorer_lut(), torch.device("cpu"))
    out = []
    out.append(
        (
            "gfpgan",
            "align: warp 512² crops",
            cpu_time(lambda: align_faces(frames, per_frame, template, range(n))) / n,
        )
    )
    out.append(
        (
            "gfpgan",
            "uint8 BGR -> normalised tensor 512²",
            cpu_time(lambda: to_tensor(crops, restorer_lut(), torch.device("cpu"))) / n,
        )
    )
    out.append(("gfpgan", "output -> uint8 BGR 512²", cpu_time(lambda: to_bgr_uint8(x)) / n))
    for scale, name in ((1.0, "256²"), (4.0, "1024²")):

        def paste(scale: float = scale) -> None:
            for i in range(n):
                paste_frame(frames[i], [crops[i]], [faces[i].affine], [classes[i]], scale)

        out.append(("gfpgan", f"paste-back into {name} (cv2, upstream)", cpu_time(paste, reps=2) / n))
    try:
        from services.gfpgan.paste import paste_frame_torch

        for scale, name in ((1.0, "256²"), (4.0, "1024²")):

            def tpaste(scale: float = scale) -> None:
                for i in range(n):
                    paste_frame_torch(frames[i], [crops[i]], [faces[i].affine], [classes[i]], scale, "cpu")

            out.append(
                ("gfpgan", f"paste-back into {name} (torch, on CPU here)", cpu_time(tpaste, reps=2) / n)
            )
    except ImportError:
        pass
    return out


def rows_media(n: int) -> list[tuple[str, str, float]]:
    from lihq.media import encode as enc

    f = frames_of(n, 1024)
    out = [
        ("media", "RGB <-> BGR 1024²", cpu_time(lambda: [cv2.cvtColor(x, cv2.COLOR_RGB2BGR) for x in f]) / n)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.mp4"
        fn = getattr(enc, "encode_video", None)
        if fn is not None:
            for preset in ("medium", "veryfast"):
                secs = cpu_time(lambda p=preset: fn(iter(f), 25.0, path, preset=p), reps=1)
                out.append(("media", f"H.264 encode 1024² {preset} (ffmpeg CPU)", secs / n))
    return out


def rows_modnet(n: int) -> list[tuple[str, str, float]]:
    from services.modnet.runner import normalise

    f = frames_of(n, 1024)
    return [
        (
            "modnet",
            "upload layout + normalise 1024² (host)",
            cpu_time(lambda: normalise(torch.from_numpy(f))) / n,
        )
    ]


SECTIONS = {
    "framepack": rows_framepack,
    "fomm": rows_fomm,
    "wav2lip": rows_wav2lip,
    "gfpgan": rows_gfpgan,
    "modnet": rows_modnet,
    "media": rows_media,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"CPU s/frame, 1 thread, {args.frames} frames per figure, torch {torch.__version__}")
    print(f"{'stage':<8} {'step':<46} {'ms/frame':>9} {'budget ms':>10} {'caps at f/s':>12}")
    for name in args.only:
        for stage, step, s in SECTIONS[name](args.frames):
            target, cores = TARGETS.get(stage, (None, None))
            budget = f"{1000 * cores / target:.1f}" if target else "-"
            caps = f"{cores / s:.0f}" if target and s > 0 else "-"
            print(f"{stage:<8} {step:<46} {1000 * s:>9.2f} {budget:>10} {caps:>12}", flush=True)


if __name__ == "__main__":
    main()
