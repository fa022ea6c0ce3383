"""FOMM (vox-256) throughput: frames/s of `FommRunner.animate` vs batch size.

Run: `python bench/fomm_bench.py` (CPU, fp32, batch sizes 1 2 4, 4 frames: ~2 minutes on 2 cores).
On a GPU: `python bench/fomm_bench.py --device cuda --precision bf16 --channels-last
--batch-sizes 8 16 32 64 --frames 256`. Not a test: it prints a table.

What is timed: one Animate segment as the service runs it — uint8 frames in, source encoded once,
keypoint detector + dense motion + generator per batch, uint8 frames out (on the host). The
per-render globals (`prepare`) are computed once before timing. Weights are synthetic (seed 1) in the
official file layout: the nets do the same arithmetic as with the real checkpoint. Batches are
timeline-aligned and full (frames a multiple of the batch size), as in production.

With `--precision fp16|bf16`, the max abs deviation of the prediction from fp32 (TF32 off) is
printed next to each row.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lihq.torchutil import resolve_device
from lihq.weights import synthesize
from services.fomm.keypoints import MotionGlobals
from services.fomm.runner import AnimateSpec, FommRunner, FommRunnerConfig


def _clip(n: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A portrait-like source and n driving frames (the source shifted and brightened a little)."""
    try:
        from skimage import data
        from skimage.transform import resize

        face = (resize(data.astronaut()[:300, 100:400], (size, size)) * 255).astype(np.uint8)
    except ImportError:
        face = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    drv = np.stack(
        [np.clip(np.roll(face, k % 9 - 4, axis=1).astype(np.int16) + k % 5, 0, 255) for k in range(n)]
    )
    return face, drv.astype(np.uint8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_animate(
    runner: FommRunner, src: np.ndarray, drv: np.ndarray, g: MotionGlobals, runs: int
) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) of one `animate` over the clip, after a warm-up.

    CPU seconds sum all threads; on a shared machine they show the work when wall time is noisy.
    """
    runner.animate(src, drv[: runner.cfg.batch_size], g)  # warm-up (allocations, cuDNN autotune)
    walls, cpus = [], []
    for _ in range(runs):
        _sync(runner.device)
        t0, c0 = time.perf_counter(), time.process_time()
        runner.animate(src, drv, g)
        _sync(runner.device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def deviation(path: Path, args: argparse.Namespace, bs: int, src, drv, g) -> float:
    """Max abs difference of the float prediction against fp32 on the first batch."""
    if args.precision == "fp32":
        return 0.0
    ref = FommRunner(_config(args, bs, "fp32"), paths={"vox": path})
    low = FommRunner(_config(args, bs, args.precision), paths={"vox": path})
    a = ref.animate_float(src, drv[:bs], g, AnimateSpec())
    b = low.animate_float(src, drv[:bs], g, AnimateSpec())
    return float(np.abs(a - b).max())


def _config(args: argparse.Namespace, bs: int, precision: str) -> FommRunnerConfig:
    return FommRunnerConfig(
        device=args.device, batch_size=bs, precision=precision, channels_last=args.channels_last
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--frames", type=int, default=4, help="frames per timed call (rounded up to each batch)")
    p.add_argument("--runs", type=int, default=1, help="timed calls per batch size (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory(prefix="fomm-bench-") as tmp:
        path = synthesize("fomm", 1, tmp)[0]
        counts = {bs: -(-args.frames // bs) * bs for bs in args.batch_sizes}  # full batches
        src, drv_all = _clip(max(counts.values()))
        g = FommRunner(_config(args, 1, "fp32"), paths={"vox": path}).prepare(src, drv_all[:1])
        print(
            f"FOMM vox-256 animate, 256², device {resolve_device(args.device)}, {args.precision}, channels_last="
            f"{args.channels_last}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        )
        print(
            f"{'batch':>5} {'frames':>6} {'s/call':>8} {'frames/s':>9} {'CPU s/frame':>11} {'max|Δ| vs fp32':>15}"
        )
        for bs in args.batch_sizes:
            n = counts[bs]
            runner = FommRunner(_config(args, bs, args.precision), paths={"vox": path})
            secs, cpu = time_animate(runner, src, drv_all[:n], g, args.runs)
            dev = deviation(path, args, bs, src, drv_all, g)
            print(f"{bs:>5} {n:>6} {secs:>8.3f} {n / secs:>9.2f} {cpu / n:>11.3f} {dev:>15.2e}")


if __name__ == "__main__":
    main()
