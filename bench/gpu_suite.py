"""One command that measures everything on a lent GPU: `bench/gpu_suite.sh` (this module does the work).

    bench/gpu_suite.sh                 # on the GPU machine: production sizes, <= 8 min on one H100
    bench/gpu_suite.sh --quick         # tiny sizes on CPU (CI: tests/bench/test_gpu_suite.py)
    bench/gpu_suite.sh --parts stages --stages fomm qvi    # a subset

Parts, in the order they run (most valuable first, so a cut-short run still brings figures back):
1. `env`: device, torch, which optional pieces exist (ffmpeg/ffprobe, gfpgan, Ray or the stand-in).
2. `stages`: every stage's benchmark in its production precision (PRODUCTION below, = the GPU
   config in k8s/overlays/gpu) with a batch-size sweep: items/s, peak GPU memory, GPU utilisation
   while busy (NVML through torch.cuda.utilization, else nvidia-smi), plus one fp32 row at the
   production batch and the deviation of the production precision from it (uint8 levels); for FOMM
   and GFPGAN also an fp16 row (their fp16 could not be measured on CPU). Each
   stage runs in its own process (a CUDA fault or hang in one cannot take the others down).
3. `e2e`: a 60 s two-pass 1024² render (synthetic weights, procedural motion) through the real
   stack: the orchestrator in this process, the media/fomm/wav2lip/gfpgan apps in plain gRPC stage
   hosts (bench/stagehost.py = `lihq host` + a call log; no Ray), a filesystem store. Wall per stage,
   time to first segment, whole-render fps.
4. `tests`: the gpu-marked tests (pytest -m gpu).
Then ONE table and the `capacity_costs.yaml` profile block to paste, also written to --out
(suite.json, table.txt, capacity.yaml) as each part finishes. A missing piece (no CUDA, no ffmpeg,
no gfpgan package, a part over its time budget) is reported as a skipped row with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Production settings on one H100 (k8s/overlays/gpu/serve-config-gpu.yaml carries the same values;
# tests/bench/test_gpu_suite.py checks they agree). precision: the best one whose error on the
# conformance vectors is measured and within the stage tolerance (bench/README.md, "Precision").
PRODUCTION: dict[str, dict[str, Any]] = {
    "fomm": {
        "precision": "bf16",
        "batch": 25,
        "sweep": [8, 16, 25, 50],
        "channels_last": True,
        "also": "fp16",
    },
    "wav2lip": {"precision": "fp16", "batch": 128, "sweep": [64, 128, 256, 512], "channels_last": True},
    "s3fd": {"precision": "fp32", "batch": 32, "sweep": [8, 16, 32, 64], "channels_last": False},
    "gfpgan": {
        "precision": "bf16",
        "batch": 16,
        "sweep": [4, 8, 16, 32],
        "channels_last": False,
        "also": "fp16",
    },
    "modnet": {"precision": "fp16", "batch": 32, "sweep": [8, 16, 32, 64], "channels_last": True},
    "qvi": {"precision": "fp16", "batch": 8, "sweep": [2, 4, 8], "channels_last": False},
}
# the H100 targets, in the stage's unit
TARGETS = {
    "fomm": 300,
    "wav2lip": 2000,
    "s3fd": 500,
    "gfpgan": 150,
    "gfpgan pass 1": 150,
    "modnet": 1000,
    "qvi": 60,
}
STAGES = ("fomm", "wav2lip", "s3fd", "gfpgan", "modnet", "qvi")
# Seconds each part may take on the GPU machine (the whole suite: <= 8 min with setup). A part that
# would start with less than its budget left is skipped with a note.
BUDGET_S = {
    "stages": {"fomm": 45, "wav2lip": 45, "s3fd": 30, "gfpgan": 90, "modnet": 35, "qvi": 50},
    "e2e": 170,
    "tests": 100,
}
QUICK_BUDGET_S = {"stages": dict.fromkeys(STAGES, 25), "e2e": 150, "tests": 60}


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
class GpuSampler:
    """GPU utilisation (%) sampled every 50 ms while a block runs: NVML through
    torch.cuda.utilization, else `nvidia-smi -lms 100`; `mean` is None on CPU or without either."""

    def __init__(self, device: Any) -> None:
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> GpuSampler:
        if self.device.type != "cuda":
            return self
        import torch

        try:
            torch.cuda.utilization(self.device)
        except Exception:  # no pynvml / NVML: fall back to nvidia-smi when present
            if shutil.which("nvidia-smi"):
                idx = self.device.index or 0
                self._proc = subprocess.Popen(
                    [
                        "nvidia-smi",
                        f"--id={idx}",
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                        "-lms",
                        "100",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                self._thread = threading.Thread(target=self._read_smi, daemon=True)
                self._thread.start()
            return self
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        import torch

        while not self._stop.wait(0.05):
            with contextlib.suppress(Exception):
                self.samples.append(float(torch.cuda.utilization(self.device)))

    def _read_smi(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._stop.is_set():
                break
            with contextlib.suppress(ValueError):
                self.samples.append(float(line.strip()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=2)

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def sync(device: Any) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


@dataclass
class Rate:
    per_s: float
    peak_mib: float | None
    util: float | None
    calls: int
    value: Any = None  # what the last call returned (not reported)


WARM_UP = True  # the quick suite (CPU, CI) skips warm-up calls: it checks that the code runs


def measure(fn: Callable[[], Any], items: int, device: Any, min_s: float, min_calls: int = 1) -> Rate:
    """Items/s of `fn` (one untimed warm-up call, then calls until min_s and min_calls are met),
    the peak GPU memory allocated during the timed calls and the mean GPU utilisation."""
    import torch

    if WARM_UP:
        fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    calls, value = 0, None
    with GpuSampler(device) as sampler:
        t0 = time.perf_counter()
        while calls < min_calls or time.perf_counter() - t0 < min_s:
            value = fn()
            calls += 1
        sync(device)
        secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return Rate(items * calls / secs, peak, sampler.mean, calls, value)


def row(stage: str, precision: str, batch: int, unit: str, rate: Rate | None, **extra: Any) -> dict:
    out = {"stage": stage, "precision": precision, "batch": batch, "unit": unit}
    if rate is not None:
        out.update(rate=rate.per_s, peak_mib=rate.peak_mib, util=rate.util, calls=rate.calls)
    out.update(extra)
    return out


def deviation(a: Any, b: Any) -> dict:
    """max and mean |a - b| of two uint8 arrays, in levels."""
    import numpy as np

    d = np.abs(np.asarray(a).astype(np.int16) - np.asarray(b).astype(np.int16))
    return {"dev_max": int(d.max()), "dev_mean": float(d.mean())}


# ---------------------------------------------------------------------------------------------
# stages (each runs in its own process: `python -m bench.gpu_suite --stage NAME --json FILE`)
# ---------------------------------------------------------------------------------------------
@dataclass
class StageCtx:
    device: Any
    quick: bool
    weights: Path  # shared synthetic weights dir (seed 1)
    min_s: float
    prod: dict[str, Any]

    @property
    def batch(self) -> int:
        return min(2, int(self.prod["batch"])) if self.quick else int(self.prod["batch"])

    @property
    def sweep(self) -> list[int]:
        return [self.batch] if self.quick else sorted({*self.prod["sweep"], self.batch})

    @property
    def precision(self) -> str:
        # fp16 autocast is a no-op on CPU (lihq.torchutil.autocast): measure bf16 there instead
        p = self.prod["precision"]
        return "bf16" if self.device.type == "cpu" and p == "fp16" else p

    def synth(self, name: str) -> list[Path]:
        return synth(self.weights, name)

    def sweep_rows(
        self, stage: str, unit: str, items: int, call: Callable[[int, str], Any], **extra: Any
    ) -> tuple[list[dict], Any, Any]:
        """Rows of the batch sweep in the production precision, then fp32 at the production batch;
        returns (rows, production output, fp32 output) with the deviation on the production row."""
        rows, low = [], None
        for bs in self.sweep:
            r = measure(lambda b=bs: call(b, self.precision), items, self.device, self.min_s)
            rows.append(row(stage, self.precision, bs, unit, r, **extra))
            if bs == self.batch:
                low = r.value
        ref = low
        if self.precision != "fp32":
            r = measure(lambda: call(self.batch, "fp32"), items, self.device, self.min_s)
            rows.append(row(stage, "fp32", self.batch, unit, r, **extra))
            ref = r.value
        also = self.prod.get("also")  # a 16-bit type not measurable on CPU: its speed and deviation here
        if also and not self.quick and self.device.type == "cuda":
            r = measure(lambda: call(self.batch, also), items, self.device, self.min_s)
            rows.append(row(stage, also, self.batch, unit, r, **extra, **_dev_of(r.value, ref)))
        return rows, low, ref


def synth(weights: Path, name: str) -> list[Path]:
    """Synthetic weights (seed 1) of registry entry `name` in `weights`, written once per suite run."""
    from lihq.weights import synthesize

    done = weights / f".suite-{name}.json"
    if done.exists():
        return [Path(p) for p in json.loads(done.read_text())]
    paths = synthesize(name, 1, weights)
    done.write_text(json.dumps([str(p) for p in paths]))
    return paths


def _dev_of(value: Any, ref: Any) -> dict:
    """Deviation of a stage output from the fp32 one (GFPGAN: its restored faces)."""
    if hasattr(value, "restored"):
        value, ref = value.restored, ref.restored
    return deviation(value, ref)


def _with_dev(rows: list[dict], precision: str, batch: int, dev: dict) -> list[dict]:
    for x in rows:
        if x["precision"] == precision and x["batch"] == batch and precision != "fp32":
            x.update(dev)
            break
    return rows


def stage_fomm(ctx: StageCtx) -> list[dict]:
    from bench.fomm_bench import _clip
    from services.fomm.runner import AnimateSpec, FommRunner, FommRunnerConfig

    path = ctx.synth("fomm")[0]
    cl = bool(ctx.prod["channels_last"])
    n = 2 if ctx.quick else 200
    runner = FommRunner(FommRunnerConfig(device=str(ctx.device), channels_last=cl), paths={"vox": path})
    src, drv = _clip(max(-(-n // b) * b for b in ctx.sweep))
    pr = measure(lambda: runner.prepare(src, drv[:1]), 1, ctx.device, 0.0)
    g = pr.value

    def call(bs: int, prec: str) -> Any:
        runner.cfg = FommRunnerConfig(device=str(ctx.device), batch_size=bs, channels_last=cl)
        m = -(-n // bs) * bs
        return runner.animate(src, drv[:m], g, AnimateSpec(precision=prec))[:n]

    rows, low, ref = ctx.sweep_rows("fomm", "frames/s", n, call, size="256²", per_render_s=1 / pr.per_s)
    return _with_dev(rows, ctx.precision, ctx.batch, deviation(low, ref))


def stage_wav2lip(ctx: StageCtx) -> list[dict]:
    import numpy as np

    from services.wav2lip.audio import mel_chunk_starts
    from services.wav2lip.objects import MelObject
    from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
    from services.wav2lip.track import fixed_track

    ctx.synth("wav2lip_gan")
    size = 256
    n = 4 if ctx.quick else 1024
    frames = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    mel = np.random.default_rng(1).uniform(-4, 2, (80, 16 + 4 * n)).astype(np.float32)
    mel_obj = MelObject(mel=mel, starts=mel_chunk_starts(mel.shape[1], 25.0), fps=25.0)
    track = fixed_track([size // 8, size - size // 16, size // 8, size - size // 8], n, size, size)
    cl = bool(ctx.prod["channels_last"])

    def cfg(bs: int, prec: str) -> Wav2LipRunnerConfig:
        return Wav2LipRunnerConfig(
            device=str(ctx.device), batch_size=bs, channels_last=cl, weights_dir=ctx.weights, precision=prec
        )

    runner = Wav2LipRunner(cfg(ctx.batch, "fp32"))

    def call(bs: int, prec: str) -> Any:
        runner.cfg = cfg(bs, prec)
        return runner.lip_sync(frames, 0, 25.0, mel_obj, track, "wav2lip_gan")

    rows, low, ref = ctx.sweep_rows("wav2lip", "faces/s", n, call, size=f"{size}² frames, 96² faces")
    return _with_dev(rows, ctx.precision, ctx.batch, deviation(low, ref))


def stage_s3fd(ctx: StageCtx) -> list[dict]:
    import numpy as np

    from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig

    ctx.synth("s3fd")
    size = 64 if ctx.quick else 256
    n = 2 if ctx.quick else 256
    frames = np.random.default_rng(2).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    runner = Wav2LipRunner(Wav2LipRunnerConfig(device=str(ctx.device), weights_dir=ctx.weights))

    def call(bs: int, prec: str) -> Any:
        runner.cfg = Wav2LipRunnerConfig(
            device=str(ctx.device), detect_batch_size=bs, weights_dir=ctx.weights, precision=prec
        )
        return runner.detect(frames)

    rows, _, _ = ctx.sweep_rows("s3fd", "frames/s", n, call, size=f"{size}²")
    return rows


def stage_gfpgan(ctx: StageCtx) -> list[dict]:
    from services.gfpgan.batched import BatchSettings, FacePlan, restore_segment
    from services.gfpgan.checkpoint import add_restorer, load_face_models
    from services.gfpgan.detect import detect_batch
    from services.gfpgan.noise import NoiseSpec, NoisyRestorer
    from tests.services.gfpgan.fakes import InjectedDetector, make_frames

    ctx.synth("gfpgan-1.3")
    ctx.synth("facexlib")
    models = load_face_models(ctx.weights, ctx.device)
    net = add_restorer(models, ctx.weights, "1.3")
    restorer = NoisyRestorer(net, NoiseSpec("seeded", 1), ctx.device)
    size = 64 if ctx.quick else 256
    n = 1 if ctx.quick else 64
    frames, dets = make_frames(n, size, seed=0)
    real = models.helper.face_det
    models.helper.face_det = InjectedDetector(frames, dets)
    workers = 1 if ctx.quick else int(os.environ.get("LIHQ_SUITE_PASTE_WORKERS", "4"))
    if ctx.quick:  # one 512² face costs ~15 CPU s: one fp32 row only
        ctx = StageCtx(
            ctx.device, True, ctx.weights, ctx.min_s, {**ctx.prod, "batch": 1, "precision": "fp32"}
        )

    def run(bs: int, prec: str, scale: float) -> Any:
        settings = BatchSettings(batch_size=bs, precision=prec, paste_workers=workers)
        return restore_segment(models, restorer, frames, FacePlan(scale=scale), settings)

    extra = {"size": f"{size}² -> {4 * size}², 512² faces", "paste_workers": workers}
    rows, low, ref = ctx.sweep_rows("gfpgan", "frames/s", n, lambda b, p: run(b, p, 4.0), **extra)
    rows = _with_dev(rows, ctx.precision, ctx.batch, deviation(low.restored, ref.restored))
    for x in rows:  # seconds per frame of each step (detect, restore, parse, paste) at the production row
        if x["precision"] == ctx.precision and x["batch"] == ctx.batch:
            x["steps_s_per_frame"] = {k: v / n for k, v in low.timings.items()}
            break
    if not ctx.quick:
        r = measure(lambda: run(ctx.batch, ctx.precision, 1.0), n, ctx.device, ctx.min_s)
        rows.append(row("gfpgan pass 1", ctx.precision, ctx.batch, "frames/s", r, size=f"{size}² -> {size}²"))
        for bs in (16, 64):  # the real detector on the same frames (random weights: it finds nothing)
            r = measure(lambda b=bs: detect_batch(real, frames, b), n, ctx.device, ctx.min_s)
            rows.append(row("retinaface", "fp32", bs, "frames/s", r, size=f"{size}²"))
    return rows


def stage_modnet(ctx: StageCtx) -> list[dict]:
    import numpy as np

    from services.modnet.runner import ModnetConfig, ModnetRunner

    ckpt = ctx.synth("modnet")[0]
    size = 64 if ctx.quick else 1024
    n = 2 if ctx.quick else 128
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (n, max(1, size // 16), max(1, size // 16), 3), dtype=np.uint8)
    frames = np.ascontiguousarray(np.repeat(np.repeat(small, 16, axis=1), 16, axis=2))
    cl = bool(ctx.prod["channels_last"])
    base = ModnetRunner.from_checkpoint(ckpt, ModnetConfig(device=str(ctx.device), channels_last=cl))

    def call(bs: int, prec: str) -> Any:
        cfg = ModnetConfig(device=str(ctx.device), batch_size=bs, precision=prec, channels_last=cl)
        r = ModnetRunner(base.model, cfg, base.model_id)
        r.net = base.net
        return r.matte_uint8(frames)

    rows, low, ref = ctx.sweep_rows("modnet", "frames/s", n, call, size=f"{size}²")
    return _with_dev(rows, ctx.precision, ctx.batch, deviation(low, ref))


def stage_qvi(ctx: StageCtx) -> list[dict]:
    from services.qvi.runner import QVIRunner, QVIRunnerConfig, model_path
    from tests.services.qvi.conftest import moving_clip

    weights = model_path(Path(ctx.synth("qvi")[0]).parents[1])
    size = 64 if ctx.quick else 1024
    n = 3 if ctx.quick else 17
    k = 1
    clip = moving_clip(n, size, size, seed=size)
    runners: dict[int, Any] = {}

    def call(bs: int, prec: str) -> Any:
        if bs not in runners:
            runners[bs] = QVIRunner(QVIRunnerConfig(weights, device=str(ctx.device), batch_size=bs))
        return runners[bs].interpolate_clip(clip, k, prec)

    rows, low, ref = ctx.sweep_rows("qvi", "frames/s", (n - 1) * k, call, size=f"{size}², k={k}")
    return _with_dev(rows, ctx.precision, ctx.batch, deviation(low[1::2], ref[1::2]))


STAGE_FNS: dict[str, Callable[[StageCtx], list[dict]]] = {
    "fomm": stage_fomm,
    "wav2lip": stage_wav2lip,
    "s3fd": stage_s3fd,
    "gfpgan": stage_gfpgan,
    "modnet": stage_modnet,
    "qvi": stage_qvi,
}


def run_stage_child(names: str, quick: bool, out: Path, weights: Path) -> None:
    """Child process: the rows of each stage in `names` (comma-separated) as JSON; a stage that
    fails becomes a skipped row with its error (the next one still runs)."""
    import traceback

    import torch

    from lihq.torchutil import resolve_device

    global WARM_UP
    WARM_UP = not quick
    device = resolve_device("auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    weights.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name in names.split(","):
        ctx = StageCtx(device, quick, weights, 0.0 if quick else 1.5, PRODUCTION[name])
        t0 = time.perf_counter()
        try:
            rows += STAGE_FNS[name](ctx)
        except Exception as exc:  # report and go on: one broken stage must not hide the others
            traceback.print_exc()
            rows.append({"stage": name, "skipped": f"{type(exc).__name__}: {exc}"[:300]})
        print(f"stage {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        out.write_text(json.dumps(rows))
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# the end-to-end render
# ---------------------------------------------------------------------------------------------
def speech_wav(path: Path, seconds: float, rate: int = 16000) -> None:
    """A speech-like mono WAV (voiced harmonics with a syllable envelope + a little noise)."""
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(h * phase) / h for h in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    x = 0.2 * voice * env + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def serve_config(quick: bool, device: str) -> dict:
    """The local Serve config with the GPU production args (device, precision, batch sizes)."""
    import yaml

    cfg = yaml.safe_load((REPO / "serve_configs" / "local.yaml").read_text())
    if quick:  # batch 1: the batched paths pad to the batch size, and 2 frames need no more
        small = {
            "fomm": {"batch_size": 1},
            "wav2lip": {"batch_size": 2, "detect_batch_size": 2},
            "gfpgan": {"batch_size": 1, "detect_batch_size": 1, "paste_workers": 1},
        }
        for app in cfg["applications"]:
            if app["name"] in small:
                app["args"] = {**(app.get("args") or {}), **small[app["name"]]}
        return cfg
    p = PRODUCTION
    args = {
        "fomm": {
            "device": device,
            "precision": p["fomm"]["precision"],
            "batch_size": p["fomm"]["batch"],
            "channels_last": p["fomm"]["channels_last"],
        },
        "wav2lip": {
            "device": device,
            "precision": p["wav2lip"]["precision"],
            "batch_size": p["wav2lip"]["batch"],
            "detect_batch_size": p["s3fd"]["batch"],
            "channels_last": p["wav2lip"]["channels_last"],
        },
        "gfpgan": {
            "device": device,
            "precision": p["gfpgan"]["precision"],
            "batch_size": p["gfpgan"]["batch"],
            "paste_workers": 4,
        },
    }
    for app in cfg["applications"]:
        if app["name"] in args:
            app["args"] = {**(app.get("args") or {}), **args[app["name"]]}
    return cfg


class Spans:
    """Executor wrapper: (task id, stage, start, end) of every stage call."""

    def __init__(self, inner: Any, spans: list | None = None) -> None:
        self.inner, self.spans = inner, spans if spans is not None else []

    def for_render(self, rec: Any) -> Spans:
        return Spans(self.inner.for_render(rec), self.spans)

    async def run(self, task: Any, deps: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await self.inner.run(task, deps)
        finally:
            self.spans.append((task.id, task.stage, t0, time.perf_counter()))


def run_e2e(quick: bool, work: Path, seconds: float, weights: Path, deadline_s: float = 0.0) -> dict:
    """The render; with `deadline_s` (seconds from now) a render still running then is cancelled and
    reported as partial (the segments finished so far give time to first segment and a rate)."""
    t_enter = time.perf_counter()
    import asyncio

    import numpy as np
    import yaml

    from bench.orchestrator_bench import StageHosts

    if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
        raise Skip("no ffmpeg/ffprobe on PATH (bench/gpu_wheels.sh packs a static build into .whl)")
    import torch

    from lihq.grpc.auth import ensure_internal_token

    ensure_internal_token()  # stage hosts accept only calls carrying it (inherited through env)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    passes, upscale, seg = (2, 1, 2) if quick else (2, 4, 50)
    t0 = time.perf_counter()
    weights.mkdir(parents=True, exist_ok=True)
    for name in ("fomm", "wav2lip_gan", "s3fd", "gfpgan-1.3", "facexlib"):
        synth(weights, name)
    synth_s = time.perf_counter() - t0
    import cv2
    from skimage.data import astronaut

    cv2.imwrite(str(work / "face.png"), np.ascontiguousarray(astronaut()[:, :, ::-1]))
    speech_wav(work / "speech.wav", seconds)
    config = work / "serve.yaml"
    config.write_text(yaml.safe_dump(serve_config(quick, device)))
    env = dict(os.environ, LIHQ_WEIGHTS_DIR=str(weights), LIHQ_HOME=str(work / "home"), PYTHONUNBUFFERED="1")
    env.update(LIHQ_BUCKET="suite", LIHQ_STORE_DIR=str(work / "store"))
    env = {k: v for k, v in env.items() if not k.startswith("LIHQ_S3_")}
    hosts = StageHosts(work, env, config)
    try:
        t0 = time.perf_counter()
        endpoints = {a: hosts.start((a,)) for a in ("media", "fomm", "wav2lip", "gfpgan")}
        start_s = time.perf_counter() - t0
        draft = 0.04 if quick else 0.0  # 1 frame (Wav2Lip's mel needs >= 0.19 s of audio)
        limit = deadline_s - (time.perf_counter() - t_enter) if deadline_s else 0.0
        res = asyncio.run(_render(env, endpoints, work, passes, upscale, seg, draft, limit))
        calls = hosts.records()
    finally:
        hosts.stop()
    wall = res["wall"]
    final = "gfpgan2" if passes == 2 else "gfpgan1"
    firsts = [e for tid, _, _, e in res["spans"] if tid.startswith(final + "/")]
    per_stage: dict[str, dict[str, float]] = {}
    for tid, _stage, a, b in res["spans"]:
        key = tid.split("/")[0].split(".")[0] if "/" in tid else tid
        d = per_stage.setdefault(key, {"first": a, "last": b, "call_s": 0.0, "calls": 0})
        d["first"], d["last"] = min(d["first"], a), max(d["last"], b)
        d["call_s"] += b - a
        d["calls"] += 1
    t_start = res["t0"]
    stages = {
        k: {
            "window_s": v["last"] - v["first"],
            "from_s": v["first"] - t_start,
            "call_s": v["call_s"],
            "calls": v["calls"],
        }
        for k, v in sorted(per_stage.items(), key=lambda kv: kv[1]["first"])
    }
    server = {}
    for c in calls:
        if c.get("outcome") == "ok":
            server[c["method"]] = server.get(c["method"], 0.0) + c.get("server_s", 0.0)
    frames = res["n_frames"]
    # frames through the last per-segment stage (all of them unless the deadline cut the render)
    done_frames = frames if not res["partial"] else min(frames, len(firsts) * seg)
    return {
        "device": device,
        "seconds": seconds,
        "frames": frames,
        "passes": passes,
        "upscale": upscale,
        "out_size": f"{256 * upscale}²",
        "wall_s": wall,
        "partial": res["partial"],
        "frames_done": done_frames,
        "fps": done_frames / wall,
        "first_segment_s": (min(firsts) - t_start) if firsts else None,
        "hosts_start_s": start_s,
        "weights_synth_s": synth_s,
        "stages": stages,
        "server_s": server,
        "output": res["output"],
    }


async def _render(
    env: dict, endpoints: dict, work: Path, passes: int, upscale: int, seg: int, draft: float, limit: float
) -> dict:
    from lihq.config import StoreConfig
    from lihq.grpc.client import StageEndpoint
    from lihq.storage import open_store
    from lihq.storage.base import content_key, sha256_file
    from orchestrator import adapters_models  # noqa: F401  (registers the model adapters)
    from orchestrator.core import Orchestrator
    from orchestrator.executor import GrpcExecutor
    from orchestrator.plan import n_frames_for
    from orchestrator.scheduler import Limits
    from orchestrator.spec import RenderSpec
    from orchestrator.state import SUCCEEDED

    store = open_store(StoreConfig.from_env(env))
    keys = {}
    for name in ("face.png", "speech.wav"):
        path = work / name
        keys[name] = content_key("inputs", sha256_file(path), path.suffix.lstrip("."))
        store.put_file(keys[name], path)
    spec = RenderSpec(
        face_key=keys["face.png"],
        audio_key=keys["speech.wav"],
        passes=passes,
        upscale=upscale,
        segment_frames=seg,
        draft_seconds=draft,
    )
    executor = Spans(GrpcExecutor({a: StageEndpoint(addr, a) for a, addr in endpoints.items()}))
    orch = Orchestrator(store, executor, Limits(concurrency={"encode": 4, "paste": 4}), synthetic=True)
    t0 = time.perf_counter()
    [rec] = await orch.create([spec])
    partial = False
    try:
        done = await asyncio.wait_for(orch.wait(rec.render_id), limit if limit > 0 else None)
    except TimeoutError:
        partial, done = True, None
    wall = time.perf_counter() - t0
    if partial:
        with contextlib.suppress(Exception):
            await orch.cancel(rec.render_id)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(orch.aclose(), 15)
    if done is not None and done.state != SUCCEEDED:
        raise RuntimeError(f"render {done.state}: {done.error}")
    import wave

    with wave.open(str(work / "speech.wav")) as w:
        secs = w.getnframes() / w.getframerate()
    secs = min(secs, draft) if draft else secs
    return {
        "wall": wall,
        "t0": t0,
        "spans": executor.spans,
        "output": done.output_key if done is not None else None,
        "n_frames": n_frames_for(secs),
        "partial": partial,
    }


# ---------------------------------------------------------------------------------------------
# the parent: parts, budgets, report
# ---------------------------------------------------------------------------------------------
class Skip(Exception):
    """A part that cannot run here; the message says why."""


def env_part() -> dict:
    import importlib.util

    import torch

    def has(mod: str) -> bool:
        try:
            return importlib.util.find_spec(mod) is not None
        except ImportError:
            return False

    info = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU x{os.cpu_count()}",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "ffmpeg": shutil.which("ffmpeg"),
        "ffprobe": shutil.which("ffprobe"),
        "nvidia-smi": shutil.which("nvidia-smi"),
        "ray": _ray_kind(),
    }
    for mod in ("gfpgan", "basicsr", "facexlib", "zstandard", "minio", "grpc_health", "pynvml"):
        info[mod] = has(mod)
    return info


def _ray_kind() -> str:
    """ "ray" (installed), "stand-in" (bench/noray will be used) for the stage hosts."""
    import importlib.util

    if os.environ.get("LIHQ_BENCH_NORAY") == "1":
        return "stand-in (forced)"
    try:
        spec = importlib.util.find_spec("ray")
    except ImportError:
        spec = None
    return "ray" if spec is not None and "noray" not in str(spec.origin) else "stand-in"


def _child(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, str]:
    """Run a child python; (returncode or None on timeout, tail of its output)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            rc = None
    return rc, log.read_text(errors="replace")[-1500:]


def fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def table(results: dict) -> str:
    lines = []
    env = results.get("env", {})
    lines.append(
        f"LIHQ GPU suite — {env.get('device', '?')}, torch {env.get('torch', '?')}, "
        f"{'quick (tiny sizes)' if results.get('quick') else 'production sizes'}"
    )
    hdr = f"{'part':<14} {'precision':>9} {'batch':>5} {'rate':>10} {'unit':<9} {'target':>7} {'peak MiB':>9} {'util %':>6} {'Δ vs fp32 (max/mean)':>20}  size / note"
    lines += [hdr, "-" * len(hdr)]
    for r in results.get("stages", []):
        if "skipped" in r:
            lines.append(f"{r['stage']:<14} skipped: {r['skipped']}")
            continue
        dev = f"{r['dev_max']}/{r['dev_mean']:.3f}" if "dev_max" in r else ""
        tgt = TARGETS.get(r["stage"])
        lines.append(
            f"{r['stage']:<14} {r['precision']:>9} {r['batch']:>5} {fmt(r.get('rate')):>10} {r['unit']:<9} "
            f"{fmt(tgt) if tgt and not results.get('quick') else '':>7} {fmt(r.get('peak_mib'), 0):>9} {fmt(r.get('util'), 0):>6} {dev:>20}  {r.get('size', '')}"
        )
    e2e = results.get("e2e")
    if e2e:
        lines.append("")
        if "skipped" in e2e:
            lines.append(f"e2e render     skipped: {e2e['skipped']}")
        else:
            lines.append(
                f"e2e render: {e2e['seconds']:.1f} s of speech = {e2e['frames']} frames, {e2e['passes']} passes, "
                f"{e2e['out_size']} out, on {e2e['device']}: wall {e2e['wall_s']:.1f} s = {e2e['fps']:.2f} frames/s; "
                f"first segment after {fmt(e2e['first_segment_s'])} s (target: 60 s of video in <= 15 s)"
                + (f"; CUT at the deadline: {e2e['frames_done']} frames done" if e2e.get("partial") else "")
            )
            lines.append(f"  {'stage':<14} {'from s':>8} {'window s':>9} {'calls':>6} {'call s (sum)':>13}")
            for k, v in e2e["stages"].items():
                lines.append(
                    f"  {k:<14} {v['from_s']:>8.1f} {v['window_s']:>9.1f} {v['calls']:>6} {v['call_s']:>13.1f}"
                )
    tests = results.get("tests")
    if tests:
        lines.append("")
        lines.append(f"gpu tests: {tests.get('summary') or tests.get('skipped')}")
    return "\n".join(lines)


def capacity_block(results: dict, profile: str = "h100") -> str:
    """The `profiles.<profile>` block for bench/capacity_costs.yaml from the production rows."""
    by = {}
    for r in results.get("stages", []):
        if (
            "rate" in r
            and r["precision"] == _prod_precision(r["stage"], results)
            and r["batch"] == _prod_batch(r["stage"], results)
        ):
            by[r["stage"]] = r
    seg = 50

    def per_seg(stage: str, share: int) -> tuple[float | None, str]:
        r = by.get(stage)
        if r is None:
            return None, "not measured"
        alone = seg / r["rate"]
        util = r.get("util")
        packed = alone * max(1.0, share * util / 100.0) if util is not None else alone * share
        return round(packed, 4), f"{r['rate']:.0f} {r['unit']} alone, util {fmt(util, 0)} %"

    lines = [
        f"  {profile}:",
        f'    source: "measured: bench/gpu_suite.sh on {results.get("env", {}).get("device", "?")}"',
        "    stages:",
    ]
    shares = {"fomm": 2, "wav2lip": 4, "gfpgan": 2, "qvi": 2, "modnet": 4}
    ops = {
        "fomm": [("fomm.animate", "fomm", "per_segment_s")],
        "wav2lip": [("wav2lip.sync", "wav2lip", "per_segment_s")],
        "gfpgan": [
            ("gfpgan.restore", "gfpgan pass 1", "per_segment_s"),
            ("gfpgan.final", "gfpgan", "per_segment_s"),
        ],
        "qvi": [("qvi.interpolate", "qvi", "per_segment_s")],
        "modnet": [("modnet.matte", "modnet", "per_segment_s")],
    }
    for app, items in ops.items():
        lines += [f"      {app}:", f"        replicas_per_gpu: {shares[app]}", "        ops:"]
        for op, stage, _ in items:
            v, note = per_seg(stage, shares[app])
            extra = ""
            if app == "wav2lip" and "s3fd" in by and v is not None:
                s3 = seg / by["s3fd"]["rate"]
                v = round(v + s3, 4)
                note += f"; + s3fd {by['s3fd']['rate']:.0f} frames/s"
            if app == "fomm" and by.get("fomm", {}).get("per_render_s") is not None:
                extra = f"per_render_s: {by['fomm']['per_render_s']:.4f}, "
            if v is None:
                lines.append(f"          # {op}: not measured")
            else:
                lines.append(f"          {op}: {{{extra}per_segment_s: {v}}}  # {note}")
    return "\n".join(lines)


def _prod_precision(stage: str, results: dict) -> str:
    key = "gfpgan" if stage.startswith("gfpgan") else stage
    p = PRODUCTION.get(key, {}).get("precision", "fp32")
    if not results.get("env", {}).get("cuda") and p == "fp16":
        return "bf16"
    return p


def _prod_batch(stage: str, results: dict) -> int:
    key = "gfpgan" if stage.startswith("gfpgan") else stage
    if results.get("quick"):
        return 1 if key == "gfpgan" else 2
    return PRODUCTION.get(key, {}).get("batch", 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, CPU is fine (CI)")
    ap.add_argument(
        "--parts", nargs="+", default=["stages", "e2e", "tests"], choices=["stages", "e2e", "tests"]
    )
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    ap.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="e2e speech length (default 60; quick 0.2, cut to 2 frames)",
    )
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the whole suite (default 450; quick 400: caps, not targets)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="where suite.json / table.txt / capacity.yaml go ($OUT if set)"
    )
    ap.add_argument("--stage", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--e2e-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.stage:
        run_stage_child(args.stage, args.quick, args.json, args.weights)
        return 0
    if args.e2e_child:
        from bench import noray

        noray.install()
        with tempfile.TemporaryDirectory(prefix="lihq-suite-e2e-") as tmp:
            try:
                res = run_e2e(args.quick, Path(tmp), args.seconds, args.weights, args.deadline)
            except Skip as exc:
                res = {"skipped": str(exc)}
        args.json.write_text(json.dumps(res))
        return 0

    t_start = time.perf_counter()
    budget = args.budget or (400.0 if args.quick else 450.0)
    budgets = QUICK_BUDGET_S if args.quick else BUDGET_S
    out = args.out or Path(os.environ.get("OUT") or tempfile.mkdtemp(prefix="lihq-gpu-suite-"))
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="lihq-suite-logs-"))
    if args.quick and os.environ.get("LIHQ_BENCH_NORAY") is None:
        os.environ["LIHQ_BENCH_NORAY"] = "1"  # CI exercises the Ray-less path the GPU machine takes
    results: dict[str, Any] = {"quick": args.quick, "env": env_part(), "stages": []}
    print(json.dumps(results["env"]), flush=True)

    def left() -> float:
        return budget - (time.perf_counter() - t_start)

    def save() -> None:
        (out / "suite.json").write_text(json.dumps(results, indent=1))
        (out / "table.txt").write_text(table(results) + "\n")
        (out / "capacity.yaml").write_text(capacity_block(results) + "\n")

    py = sys.executable
    weights = Path(tempfile.mkdtemp(prefix="lihq-suite-weights-"))
    if "stages" in args.parts:
        # one process per stage on a GPU (a CUDA fault or hang stays in it); one for all in --quick
        groups = [[n] for n in args.stages] if not args.quick else [list(args.stages)]
        for group in groups:
            b = sum(budgets["stages"][n] for n in group)
            if left() < b * 0.5:
                for n in group:
                    results["stages"].append(
                        {"stage": n, "skipped": f"suite budget spent ({left():.0f} s left)"}
                    )
                continue
            tag = "-".join(group)
            f = logs / f"{tag}.json"
            cmd = [
                py,
                "-m",
                "bench.gpu_suite",
                "--stage",
                ",".join(group),
                "--json",
                str(f),
                "--weights",
                str(weights),
            ]
            t0 = time.perf_counter()
            rc, tail = _child(cmd + (["--quick"] if args.quick else []), min(b, left()), logs / f"{tag}.log")
            rows = json.loads(f.read_text()) if f.exists() else []
            results["stages"].extend(rows)
            if rc != 0:
                why = "timed out" if rc is None else f"exit {rc}"
                last = [x for x in tail.strip().splitlines() if x.strip()][-1:] or [""]
                done = {r["stage"] for r in rows}
                for n in group:
                    if n not in done:
                        results["stages"].append({"stage": n, "skipped": f"{why}: {last[0][:160]}"})
            print(
                f"[{time.perf_counter() - t_start:6.1f} s] stages {tag}: {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            save()
    if "e2e" in args.parts:
        b = budgets["e2e"]
        if left() < b * 0.5:
            results["e2e"] = {"skipped": f"suite budget spent ({left():.0f} s left)"}
        else:
            f = logs / "e2e.json"
            seconds = args.seconds or (0.2 if args.quick else 60.0)
            cmd = [py, "-m", "bench.gpu_suite", "--e2e-child", "--json", str(f), "--seconds", str(seconds)]
            limit = min(b, left())
            cmd += ["--weights", str(weights), "--deadline", str(max(10.0, limit - 25))]
            rc, tail = _child(cmd + (["--quick"] if args.quick else []), limit, logs / "e2e.log")
            if rc == 0 and f.exists():
                results["e2e"] = json.loads(f.read_text())
            else:
                why = "timed out" if rc is None else f"exit {rc}"
                last = [x for x in tail.strip().splitlines() if x.strip()][-1:] or [""]
                results["e2e"] = {"skipped": f"{why}: {last[0][:200]}"}
                (out / "e2e.log").write_text(tail)
        print(f"[{time.perf_counter() - t_start:6.1f} s] e2e done", flush=True)
        save()
    if "tests" in args.parts:
        results["tests"] = run_tests(args.quick, min(budgets["tests"], left()), logs)
        save()
    save()
    shutil.rmtree(weights, ignore_errors=True)
    print()
    print(table(results))
    print()
    print("# bench/capacity_costs.yaml: paste under `profiles:` (replacing the placeholder block)")
    print(capacity_block(results))
    print(f"\n(files: {out})")
    return 0


GPU_TEST_FILES = (
    "tests/services/fomm/test_gpu.py",
    "tests/services/wav2lip/test_gpu.py",
    "tests/services/qvi/test_gpu.py",
    "tests/services/modnet/test_runner.py",
)


def run_tests(quick: bool, timeout: float, logs: Path) -> dict:
    if timeout < 20:
        return {"skipped": "suite budget spent"}
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed"}
    files = [f for f in GPU_TEST_FILES if (REPO / f).exists()]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        "-x",
        "--timeout",
        "120",
        *files,
    ]
    rc, tail = _child(cmd, timeout, logs / "tests.log")
    lines = [x for x in tail.strip().splitlines() if x.strip()]
    summary = lines[-1] if lines else ""
    if rc is None:
        summary = f"timed out after {timeout:.0f} s; last line: {summary}"
    return {"rc": rc, "summary": summary, "tail": tail[-1200:]}


if __name__ == "__main__":
    sys.exit(main())
