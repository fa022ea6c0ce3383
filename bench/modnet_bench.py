"""MODNet matting speed: frames/s vs batch size at 512² (synthetic weights, official file layout).

Run: `python bench/modnet_bench.py` (CPU, under a minute on 2 idle cores). On a GPU:
`python bench/modnet_bench.py --device cuda --precisions fp32,fp16,bf16 --batch-sizes 1,8,32,64,128
--frames 512 --repeats 3 [--channels-last] [--compile]`.

Two figures per row:
- `pipeline`: uint8 RGB frames on the host -> uint8 mattes on the host through `ModnetRunner.matte_uint8`
  (upload, normalisation, area resizes, network, truncation, download): what the Matte stage pays;
- `net`: the network alone on an already-normalised batch resident on the device.
For fp16 / bf16 rows `max dev` is the largest |matte - fp32 matte| over the pipeline output (uint8
levels), i.e. what reduced precision costs in accuracy. Synthetic weights give meaningless mattes but
the same work as the official ones (same shapes and operations).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from lihq.torchutil import autocast
from lihq.weights import synthesize
from services.modnet.runner import ModnetConfig, ModnetRunner, network_size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], object], frames: int, device: torch.device, repeats: int) -> float:
    """Best frames/s over `repeats` timed calls (after one warm-up call)."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return frames / best


def _net_fn(runner: ModnetRunner, x: torch.Tensor, batch: int, precision: str) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode(), autocast(runner.device, precision):
            for s in range(0, len(x), batch):
                runner.net(x[s : s + batch], True)

    return run


def _frames(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images (so area resizes and IN statistics see image-like content)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, size // 16, size // 16, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, 16, axis=1), 16, axis=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="fp32", help="comma list of fp32, fp16, bf16")
    ap.add_argument("--batch-sizes", default="1,2,4")
    ap.add_argument(
        "--size",
        type=int,
        default=512,
        help="square frame side; the network size follows the ref-size rule (printed)",
    )
    ap.add_argument("--frames", type=int, default=4, help="frames per timed call")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (GPU)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    batches = [int(b) for b in args.batch_sizes.split(",")]
    precisions = args.precisions.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = synthesize("modnet", args.seed, tmp)[0]
        cfg = ModnetConfig(device=args.device, channels_last=args.channels_last, compile=args.compile)
        base = ModnetRunner.from_checkpoint(ckpt, cfg)
    frames = _frames(args.frames, args.size, args.seed)
    rh, rw = network_size(args.size, args.size, cfg.ref_size)
    print(f"MODNet {args.size}x{args.size} frames (network {rw}x{rh}), device {base.device}, ", end="")
    print(f"{args.frames} frames per call, best of {args.repeats}, torch {torch.__version__}, ", end="")
    print(f"threads {torch.get_num_threads()}, channels_last={args.channels_last}, compile={args.compile}")
    if base.device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(base.device)}")
    print(f"{'precision':>9} {'batch':>5} {'pipeline f/s':>13} {'net f/s':>9} {'max dev':>8}")
    reference = base.matte_uint8(frames[: min(len(frames), 8)])
    x = base.prepare(base.preprocess(frames, (rh, rw)))
    for precision in precisions:
        for batch in batches:
            runner = ModnetRunner(
                base.model, replace(cfg, batch_size=batch, precision=precision), base.model_id
            )
            runner.net = base.net  # share one (compiled) network
            pipe = _rate(lambda r=runner: r.matte_uint8(frames), len(frames), runner.device, args.repeats)
            net = _rate(_net_fn(runner, x, batch, precision), len(frames), runner.device, args.repeats)
            dev = np.abs(runner.matte_uint8(frames[: len(reference)]).astype(int) - reference).max()
            print(f"{precision:>9} {batch:>5} {pipe:>13.1f} {net:>9.1f} {dev:>8d}")


if __name__ == "__main__":
    main()
