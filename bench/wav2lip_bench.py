"""Lip-sync stage benchmark: Wav2Lip faces/s vs batch size, S3FD frames/s at 256², synthetic weights.

Run: `python bench/wav2lip_bench.py` (CPU, fp32, about 1-2 minutes on 2 idle cores). On a GPU:
`python bench/wav2lip_bench.py --device cuda --precisions fp32 bf16 fp16 --batch-sizes 32 64 128 256 512
--detect-batch-sizes 8 16 32 64 --channels-last both --frames 256 --min-items 2048 --min-seconds 2`.

Rows:
- `wav2lip net`: the generator alone on device-resident inputs (mel chunks + 6x96x96 windows), faces/s;
  for bf16/fp16 autocast also the deviation from fp32 on the same inputs (max |output diff| and the
  share of uint8 predictions that change);
- `wav2lip e2e`: `Wav2LipRunner.lip_sync` on 256² uint8 frames: crop + resize, windows, forward,
  truncation, resize + paste back (the CPU parts included), faces/s;
- `s3fd`: `Wav2LipRunner.detect` on 256² frames (net + prior decoding + top box), frames/s.
Weights are synthetic (seed 1); speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lihq.torchutil import autocast
from lihq.weights import synthesize
from services.wav2lip.audio import mel_chunk_starts
from services.wav2lip.faces import prediction_u8
from services.wav2lip.objects import MelObject
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.track import fixed_track


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], None], items: int, device: torch.device, min_items: int, min_s: float) -> float:
    """Items per second of `fn` (one warm-up call, then repeated until min_items and min_s are met)."""
    fn()
    _sync(device)
    done, t0 = 0, time.perf_counter()
    while done < min_items or time.perf_counter() - t0 < min_s:
        fn()
        done += items
    _sync(device)
    return done / (time.perf_counter() - t0)


def _runner(
    args: argparse.Namespace, weights: Path, channels_last: bool, batch: int, det_batch: int
) -> Wav2LipRunner:
    cfg = Wav2LipRunnerConfig(
        device=args.device,
        batch_size=batch,
        detect_batch_size=det_batch,
        channels_last=channels_last,
        weights_dir=weights,
    )
    return Wav2LipRunner(cfg)


def bench_net(args: argparse.Namespace, weights: Path, channels_last: bool) -> None:
    runner = _runner(args, weights, channels_last, max(args.batch_sizes), 1)
    net, dev = runner._net("wav2lip_gan"), runner.device  # noqa: SLF001 - benchmark reaches in
    g = torch.Generator().manual_seed(0)
    for bs in args.batch_sizes:
        mel = (torch.rand(bs, 1, 80, 16, generator=g) * 6 - 4).to(dev)
        win = torch.rand(bs, 6, 96, 96, generator=g).to(dev)
        if channels_last:
            win = win.contiguous(memory_format=torch.channels_last)
        ref = None
        for prec in args.precisions:

            def fwd(p: str = prec, m: torch.Tensor = mel, w: torch.Tensor = win) -> torch.Tensor:
                with torch.inference_mode(), autocast(dev, p):
                    return net(m, w)

            rate = _rate(fwd, bs, dev, args.min_items, args.min_seconds)
            out = fwd().float()
            dev_txt = ""
            if prec == "fp32":
                ref = out
            elif ref is not None:
                off = np.abs(prediction_u8(out).astype(int) - prediction_u8(ref).astype(int))
                dev_txt = f"  max|d| {float((out - ref).abs().max()):.2e}  u8 off {np.mean(off > 0):.2%}"
            print(
                f"wav2lip net  cl={int(channels_last)} {prec:4s} batch {bs:4d}: {rate:9.1f} faces/s{dev_txt}"
            )


def bench_e2e(args: argparse.Namespace, weights: Path, channels_last: bool) -> None:
    n = max(args.batch_sizes)
    frames = np.random.default_rng(0).integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    mel = np.random.default_rng(1).uniform(-4, 2, (80, 16 + 4 * n)).astype(np.float32)
    mel_obj = MelObject(mel=mel, starts=mel_chunk_starts(mel.shape[1], 25.0), fps=25.0)
    s = args.size
    track = fixed_track([s // 8, s - s // 16, s // 8, s - s // 8], n, s, s)
    for bs in args.batch_sizes:
        runner = _runner(args, weights, channels_last, bs, 1)

        def call(r: Wav2LipRunner = runner) -> None:
            r.lip_sync(frames, 0, 25.0, mel_obj, track, "wav2lip_gan")

        rate = _rate(call, n, runner.device, args.min_items, args.min_seconds)
        print(
            f"wav2lip e2e  cl={int(channels_last)} fp32 batch {bs:4d}: {rate:9.1f} faces/s ({n} frames {s}²)"
        )


def bench_s3fd(args: argparse.Namespace, weights: Path, channels_last: bool) -> None:
    frames = np.random.default_rng(2).integers(0, 256, (args.frames, args.size, args.size, 3), dtype=np.uint8)
    for bs in args.detect_batch_sizes:
        runner = _runner(args, weights, channels_last, 1, bs)
        rate = _rate(
            lambda r=runner: r.detect(frames), len(frames), runner.device, args.min_items, args.min_seconds
        )
        print(f"s3fd         cl={int(channels_last)} fp32 batch {bs:4d}: {rate:9.1f} frames/s ({args.size}²)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--detect-batch-sizes", nargs="+", type=int, default=[1, 2])
    p.add_argument("--frames", type=int, default=2, help="frames per S3FD call")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--channels-last", choices=["off", "on", "both"], default="off")
    p.add_argument("--min-items", type=int, default=4, help="faces/frames timed per row (at least)")
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--only", nargs="+", choices=["net", "e2e", "s3fd"], default=["net", "e2e", "s3fd"])
    args = p.parse_args()
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    layouts = {"off": [False], "on": [True], "both": [False, True]}[args.channels_last]
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="lihq-w2l-bench-") as tmp:
        weights = Path(tmp)
        synthesize("wav2lip_gan", 1, weights)
        synthesize("s3fd", 1, weights)
        for cl in layouts:
            if "net" in args.only:
                bench_net(args, weights, cl)
            if "e2e" in args.only:
                bench_e2e(args, weights, cl)
            if "s3fd" in args.only:
                bench_s3fd(args, weights, cl)


if __name__ == "__main__":
    main()
