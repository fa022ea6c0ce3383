"""GFPGAN benchmark: faces/s for the net alone and for the whole restore path vs batch size.

Run: `python bench/gfpgan_bench.py` (CPU defaults: 2 frames of 128², batch sizes 1 and 2, no
warm-up; a few minutes on 2 cores, nearly all of it GFPGAN + ParseNet at 512², ~5-10 s per face). On a GPU:
`python bench/gfpgan_bench.py --device cuda --batch-sizes 1,4,8,16,32 --faces 64 --frames 64
--frame-size 256 --precision bf16` (`--precision` also prints the deviation from fp32).

Weights are synthetic (seed 1, official shapes: GFPGANv1Clean, RetinaFace-R50, ParseNet, RRDBNet
x2plus), so timings are those of the real nets; restored pixels are meaningless. Synthetic
RetinaFace finds no real face, so the frames carry drawn faces whose detections are injected
(tests/services/gfpgan/fakes.py); the detector's own speed is timed separately on the same frames.

Sections:
1. net alone: GFPGANv1Clean forward (fixed seeded noise) on 512² crops, faces/s per batch size;
2. whole restore path (batched): align + GFPGAN + ParseNet + mask + paste at the pass-2 output size
   (x4), frames/s per batch size, with a per-step breakdown; then upstream's one-at-a-time
   GFPGANer.enhance on the same frames (the baseline the batched path reproduces);
3. pass 1 vs pass 2, per frame: the shared GFPGAN + ParseNet work (from section 2's last run), the
   paste at each pass's output size (pass 1: 256 px, pass 2: x4) and the RealESRGAN x2plus background
   (pass 2 only), in GFLOP (counted on the meta device) and in time on this device;
4. detector: batched RetinaFace frames/s;
5. precision (when not fp32): max |out - out_fp32| / max |out_fp32| of the net's raw output, and the
   share of uint8 pixels that change. With random weights outputs reach ~1e4, so fp16 may overflow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lihq.torchutil import autocast, resolve_device  # noqa: E402
from lihq.weights import synthesize  # noqa: E402
from services.gfpgan.batched import (  # noqa: E402
    BatchSettings,
    FacePlan,
    paste_all,
    restore_segment,
)
from services.gfpgan.checkpoint import add_restorer, build_restorer, load_face_models  # noqa: E402
from services.gfpgan.compat import upstream  # noqa: E402
from services.gfpgan.detect import detect_batch  # noqa: E402
from services.gfpgan.noise import NoiseSpec, NoisyRestorer  # noqa: E402
from services.gfpgan.reference import enhance_frames  # noqa: E402
from services.gfpgan.synth_bg import synthesize_realesrgan  # noqa: E402
from services.gfpgan.tensors import restorer_lut, to_bgr_uint8, to_tensor  # noqa: E402
from services.gfpgan.upsampler import BackgroundUpsampler, build_rrdbnet  # noqa: E402
from tests.services.gfpgan.fakes import InjectedDetector, make_frames  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, warmup: int = 0, reps: int = 1) -> float:
    """Seconds per call (after `warmup` untimed calls)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(device)
    return (time.perf_counter() - t) / reps


def prepare(args: argparse.Namespace, device: torch.device, root: Path):
    if not args.weights_dir:
        t = time.perf_counter()
        synthesize("gfpgan-1.4", 1, root)
        synthesize("facexlib", 1, root)
        if args.bg:
            synthesize_realesrgan(1, root)
        print(f"synthetic weights (seed 1) written to {root} in {time.perf_counter() - t:.1f} s")
    models = load_face_models(root, device)
    net = add_restorer(models, root, "1.4")
    bg = BackgroundUpsampler.from_weights_dir(root, device, precision=args.precision) if args.bg else None
    frames, dets = make_frames(args.frames, args.frame_size, seed=0)
    real_detector = models.helper.face_det
    models.helper.face_det = InjectedDetector(frames, dets)
    return models, net, bg, frames, real_detector


def bench_net(models, net, device, args) -> None:
    print("\n1. GFPGANv1Clean alone (512² crops, seeded noise)")
    print(f"{'batch':>6} {'faces/s':>9} {'ms/face':>9}")
    restorer = NoisyRestorer(net, NoiseSpec("seeded", 1), device)
    crops = np.random.default_rng(0).integers(
        0, 256, size=(max(args.batch_sizes), 512, 512, 3), dtype=np.uint8
    )
    for bs in args.batch_sizes:
        x = to_tensor(crops[:bs], restorer_lut(), device)

        def run(x=x):
            with torch.no_grad(), autocast(device, args.precision):
                restorer(x)

        s = timed(run, device, args.warmup, args.reps)
        print(f"{bs:>6} {bs / s:>9.2f} {1000 * s / bs:>9.1f}")


def gflops(build, shape: tuple[int, ...], **call) -> float:
    """GFLOP of one forward, counted on the meta device (no weights, no compute)."""
    with torch.device("meta"):
        net = build().eval()
        x = torch.empty(shape)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(x, **call)
    return fc.get_total_flops() / 1e9


def bench_path(models, net, frames, device, args):
    print(
        f"\n2. whole restore path, {len(frames)} frames of {args.frame_size}², 1 face each, x{args.upscale} output"
    )
    print(
        f"{'batch':>6} {'frames/s':>9} {'detect':>8} {'restore':>8} {'parse':>8} {'paste':>8}  (s per frame)"
    )
    restorer = NoisyRestorer(net, NoiseSpec("seeded", 1), device)
    plan = FacePlan(scale=float(args.upscale))
    n = len(frames)
    for bs in args.batch_sizes:
        settings = BatchSettings(batch_size=bs, precision=args.precision, paste_workers=args.paste_workers)
        for _ in range(args.warmup):
            restore_segment(models, restorer, frames, plan, settings)
        t = time.perf_counter()
        out = restore_segment(models, restorer, frames, plan, settings)
        sync(device)
        s = time.perf_counter() - t
        tm = out.timings
        cols = [tm.get(k, 0.0) / n for k in ("detect_s", "restore_s", "parse_s", "paste_s")]
        print(f"{bs:>6} {n / s:>9.2f} " + " ".join(f"{c:>8.3f}" for c in cols))
    k = min(n, args.reference_frames)
    t = time.perf_counter()
    enhance_frames(models, restorer, frames[:k], float(args.upscale))
    print(f"{'GFPGANer.enhance, one at a time':>38}: {k / (time.perf_counter() - t):.2f} frames/s")
    return out


def bench_passes(models, bg, frames, out, device, args) -> None:
    print("\n3. pass 1 vs pass 2: per frame (GFLOP: network work; ms: this device)")
    n = len(frames)
    shared_s = (out.timings["restore_s"] + out.timings["parse_s"]) / n
    shared_gf = gflops(build_restorer, (1, 3, 512, 512), return_rgb=False) + gflops(
        lambda: upstream().ParseNet(in_size=512, out_size=512, parsing_ch=19), (1, 3, 512, 512)
    )
    rows = [("shared: GFPGAN + ParseNet", shared_gf, shared_s)]
    idx = range(n)
    for name, scale in (
        (f"paste pass 1 ({args.pass1_size} px)", args.pass1_size / args.frame_size),
        (f"paste pass 2 (x{args.upscale})", float(args.upscale)),
    ):
        plan = FacePlan(scale=scale)
        s = timed(
            lambda p=plan: paste_all(
                frames, idx, out.placed, out.restored, out.classes, p, None, args.paste_workers
            ),
            device,
            args.warmup,
        )
        rows.append((name, 0.0, s / n))
    bg_gf = gflops(build_rrdbnet, (1, 3, args.frame_size, args.frame_size))
    bg_s = (
        timed(lambda: bg.enhance_batch(frames, float(args.upscale)), device, args.warmup) / n
        if bg
        else float("nan")
    )
    rows.append(("RealESRGAN x2plus background (pass 2)", bg_gf, bg_s))
    for name, gf, s in rows:
        print(f"{name:>40}: {gf:8.0f} GFLOP {1000 * s:10.1f} ms")
    p1 = (rows[0][1], rows[0][2] + rows[1][2])
    p2 = (rows[0][1] + bg_gf, rows[0][2] + rows[2][2] + (bg_s if bg else 0.0))
    print(f"{'pass 1 (no background upsampler)':>40}: {p1[0]:8.0f} GFLOP {1000 * p1[1]:10.1f} ms")
    print(f"{'pass 2 (with it)':>40}: {p2[0]:8.0f} GFLOP {1000 * p2[1]:10.1f} ms")
    print(
        f"pass 1 saves {100 * (1 - p1[0] / p2[0]):.0f} % of the network work, {100 * (1 - p1[1] / p2[1]):.0f} % of the time here"
    )
    if args.frame_size != 256:
        bg256 = gflops(build_rrdbnet, (1, 3, 256, 256))
        saving = 100 * bg256 / (shared_gf + bg256)
        print(
            f"at LIHQ's 256² frames the background costs {bg256:.0f} GFLOP: pass 1 saves {saving:.0f} % of the work"
        )


def bench_detector(detector, frames, device, args) -> None:
    print(f"\n4. RetinaFace-R50 (batched, {args.frame_size}² frames)")
    for bs in args.batch_sizes:
        s = timed(lambda bs=bs: detect_batch(detector, frames, bs), device, args.warmup)
        print(f"{bs:>6} {len(frames) / s:>9.2f} frames/s")


def bench_precision(net, device, args) -> None:
    if args.precision == "fp32":
        return
    print(f"\n5. {args.precision} vs fp32 (GFPGAN raw output, seeded noise)")
    restorer = NoisyRestorer(net, NoiseSpec("seeded", 1), device)
    crops = np.random.default_rng(1).integers(0, 256, size=(2, 512, 512, 3), dtype=np.uint8)
    x = to_tensor(crops, restorer_lut(), device)
    with torch.no_grad():
        ref = restorer(x)[0].float()
        with autocast(device, args.precision):
            low = restorer(x)[0].float()
    rel = float((low - ref).abs().max() / ref.abs().max())
    changed = float((to_bgr_uint8(low) != to_bgr_uint8(ref)).any(axis=3).mean())
    print(
        f"max|d|/max|ref| = {rel:.3g}; uint8 pixels changed: {100 * changed:.2f} %; finite: {bool(torch.isfinite(low).all())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch-sizes", default=None, help="comma list (default 1,2 on CPU; 1,4,8,16 on GPU)")
    ap.add_argument(
        "--frames", type=int, default=None, help="frames for the path sections (default 2 CPU / 32 GPU)"
    )
    ap.add_argument(
        "--frame-size", type=int, default=None, help="input frame side (default 128 CPU / 256 GPU)"
    )
    ap.add_argument("--upscale", type=int, default=4)
    ap.add_argument("--pass1-size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 0 CPU / 2 GPU)")
    ap.add_argument("--reference-frames", type=int, default=1, help="frames for the GFPGANer baseline")
    ap.add_argument("--paste-workers", type=int, default=2)
    ap.add_argument(
        "--no-bg", dest="bg", action="store_false", help="skip the RealESRGAN background upsampler"
    )
    ap.add_argument("--weights-dir", default=None, help="use these weights instead of synthesizing")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.batch_sizes = [int(b) for b in (args.batch_sizes or ("1,4,8,16" if gpu else "1,2")).split(",")]
    args.frames = args.frames or (32 if gpu else 2)
    args.frame_size = args.frame_size or (256 if gpu else 128)
    args.warmup = args.warmup if args.warmup is not None else (2 if gpu else 0)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; precision {args.precision}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="lihq-gfpgan-bench-") as tmp:
        root = Path(args.weights_dir) if args.weights_dir else Path(tmp)
        models, net, bg, frames, real_detector = prepare(args, device, root)
        bench_net(models, net, device, args)
        out = bench_path(models, net, frames, device, args)
        bench_passes(models, bg, frames, out, device, args)
        bench_detector(real_detector, frames, device, args)
        bench_precision(net, device, args)


if __name__ == "__main__":
    main()
