"""QVI interpolation benchmark: seconds per interpolated frame vs k, and what reusing flows saves.

Run: `python bench/qvi_bench.py --threads 1` (CPU, 256^2, k = 1 and 3, about 2 minutes);
`python bench/qvi_bench.py --sizes 1024 --ks 1 --frames 2 --no-upstream` for one short 1024^2 run;
on a GPU: `python bench/qvi_bench.py --device cuda --sizes 256 1024 --ks 1 3 7 --frames 8
--precisions fp32 bf16 fp16 --batch 8`.

Rows:
- `ours`: QVIRunner.interpolate_clip on a clip of --frames frames: every directed flow between
  neighbouring frames is estimated once (each frame's PWC pyramid once) and reused by every t and
  both pairs that need it, then the k frames of all pairs are synthesized in batches.
- `upstream`: what upstream's demo does for the same clip: for every pair and every t, a full
  QVI(I0, I1, I2, I3, t) call (4 PWC calls, or 2 at the clip ends), batch 1.
- precision rows (bf16 / fp16, GPU only) print the deviation from the fp32 output in 8-bit levels.
Weights are synthetic (seed 1, official layout) unless --weights names a real model.pt: speed does
not depend on the values. Content: moving synthetic frames (tests/services/qvi/conftest.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lihq.weights.synth import synthesize  # noqa: E402
from services.qvi.nets import Flows  # noqa: E402
from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path, time_steps  # noqa: E402
from tests.services.qvi.conftest import moving_clip  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, runs: int) -> tuple[float, object]:
    """Median seconds of `runs` calls: wall clock on a GPU, this process's CPU time on a CPU (with
    --threads 1 that equals wall time on an idle core, and does not grow when the machine is shared)."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times, out = [], None
    for _ in range(runs):
        _sync(device)
        t0 = clock()
        out = fn()
        _sync(device)
        times.append(clock() - t0)
    return statistics.median(times), out


def breakdown(runner: QVIRunner, clip: np.ndarray, runs: int) -> tuple[float, float]:
    """(seconds per directed PWC flow, seconds per synthesized frame) at this size, batch 1."""
    x = runner.to_model_input(clip[:2])
    net, dev = runner.model, runner.device
    with torch.inference_mode():
        flow_t, flows = _timed(lambda: runner.neighbour_flows(x, [(0, 1), (1, 0)]), dev, runs)
        fl = Flows(None, flows[(0, 1)], flows[(1, 0)], None)
        synth_t, _ = _timed(lambda: net.synthesize(x[:1], x[1:], fl, 0.5), dev, runs)
    return flow_t / 2, synth_t


def upstream_style(runner: QVIRunner, clip: np.ndarray, k: int) -> None:
    """Upstream demo.py's loop: per pair and per t, one QVI forward whose 4 flows (2 at the clip
    ends) are separate PWC calls, each extracting both frames' pyramids; batch 1."""
    x = runner.to_model_input(clip)
    n, net = x.shape[0], runner.model.flownet
    with torch.inference_mode():
        for p in range(n - 1):
            i1, i2 = x[p : p + 1], x[p + 1 : p + 2]
            quadratic = p >= 1 and p + 2 < n
            for t in time_steps(k):
                f10 = net(i1, x[p - 1 : p]) if quadratic else None
                f23 = net(i2, x[p + 2 : p + 3]) if quadratic else None
                flows = Flows(f10, net(i1, i2), net(i2, i1), f23)
                runner.model.synthesize(i1, i2, flows, t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[256])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--frames", type=int, default=6, help="clip length (>= 2); pairs = frames - 1")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1, help="median of this many timed runs (after 1 warm-up)")
    ap.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--no-upstream", action="store_true", help="skip the upstream-style baseline")
    ap.add_argument("--weights", type=Path, default=None, help="a model.pt (default: synthetic seed 1)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="qvi-bench-") as tmp:
        weights = args.weights or model_path(Path(synthesize("qvi", 1, tmp)[0]).parents[1])
        run(args, weights)


def run(args: argparse.Namespace, weights: Path) -> None:
    runner = QVIRunner(QVIRunnerConfig(weights, device=args.device, batch_size=args.batch))
    dev = runner.device
    name = (
        torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    )
    print(f"QVI bench on {name}; weights {runner.model_id}; clip of {args.frames} frames; batch {args.batch}")
    print(
        f"{'size':>6} {'k':>2} {'path':>9} {'prec':>5} {'s/frame':>9} {'frames/s':>9} {'vs fp32':>16} {'saving':>8}"
    )
    for size in args.sizes:
        clip = moving_clip(args.frames, size, size, seed=size)
        if args.breakdown:
            flow_s, synth_s = breakdown(runner, clip, args.runs)
            print(f"{size:>5}²  one PWC flow {flow_s:.3f} s, one synthesis (UNet + warps) {synth_s:.3f} s:")
            for (
                k
            ) in args.ks:  # a pair inside a long clip: ours 2 flows + k synth; upstream k (4 flows + synth)
                ours, up = 2 * flow_s + k * synth_s, k * (4 * flow_s + synth_s)
                print(
                    f"        k={k}: inside a long clip {ours / k:.3f} s/frame, upstream {up / k:.3f} ({up / ours:.2f}x)"
                )
        for k in args.ks:
            bench_case(runner, clip, k, args)


def bench_case(runner: QVIRunner, clip: np.ndarray, k: int, args: argparse.Namespace) -> None:
    dev, size = runner.device, clip.shape[1]
    made = (len(clip) - 1) * k
    runner.interpolate_clip(clip[:2], k, "fp32")  # warm-up (allocator, cudnn autotune)
    base_t, base = _timed(partial(runner.interpolate_clip, clip, k, "fp32"), dev, args.runs)
    up_t = None if args.no_upstream else _timed(partial(upstream_style, runner, clip, k), dev, args.runs)[0]
    _row(size, k, "ours", "fp32", base_t / made, "", f"{up_t / base_t:.2f}x" if up_t else "-")
    if up_t:
        _row(size, k, "upstream", "fp32", up_t / made, "", "")
    for prec in [p for p in args.precisions if p != "fp32"]:
        t, out = _timed(partial(runner.interpolate_clip, clip, k, prec), dev, args.runs)
        same = dev.type == "cpu" and prec == "fp16"  # autocast runs fp16 as fp32 on CPU
        _row(size, k, "ours", prec, t / made, "(= fp32 on cpu)" if same else _deviation(out, base, k), "")


def _deviation(out: np.ndarray, ref: np.ndarray, k: int) -> str:
    mask = np.ones(len(ref), bool)
    mask[:: k + 1] = False  # interpolated frames only
    d = np.abs(out[mask].astype(np.int16) - ref[mask].astype(np.int16))
    return f"max {int(d.max())} mean {d.mean():.3f}"


def _row(size: int, k: int, path: str, prec: str, spf: float, dev: str, saving: str) -> None:
    print(
        f"{size:>5}² {k:>2} {path:>9} {prec:>5} {spf:>9.3f} {1 / spf:>9.2f} {dev:>16} {saving:>8}", flush=True
    )


if __name__ == "__main__":
    main()
