"""Speech stage benchmark: real-time factor (RTF = wall time / audio time) per backend and preset on CPU,
and the speed-up from rendering the chunks of one long text on 2 workers instead of 1.

Run: `python bench/tts_bench.py` (a few minutes on 2 cores); `--help` for options.

- espeak: the real espeak-ng; figures are what production gets.
- tortoise / bark: TINY randomly initialised networks (the packages' own classes, our loaders, the
  packages' inference code), so their RTFs measure the pipeline's structure (autoregressive steps,
  CLVP, diffusion steps per preset, vocoder / EnCodec) at toy sizes, not the cost of the real models.
  Tiny TorToiSe speaks `--mel-tokens` tokens (1/20 s each) per chunk whatever the text.
- parallel chunks: each worker is a process with its own runner (1 torch thread), as a replica is;
  the same chunks are rendered by 1 then 2 workers; models load before the clock starts.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.tts.backends import SAMPLE_RATE  # noqa: E402
from services.tts.backends.bark import BarkSettings  # noqa: E402
from services.tts.backends.tortoise import PRESETS, TortoiseSettings  # noqa: E402
from services.tts.runner import TtsRunner, TtsRunnerConfig  # noqa: E402

TEXT = (
    "A face image and speech become a talking head video by chaining open models. "
    "Text is spoken first, then the head moves, the mouth follows the voice, and the face is restored. "
    "Each model is its own service, so each one scales on its own machines. "
    "Long text is cut into chunks, and the chunks of one request are spoken in parallel. "
    "Then they are joined in order, with short natural pauses between them. "
) * 3

_WORKER: TtsRunner | None = None


def make_runner(root: Path, mel_tokens: int, bark_s: float) -> TtsRunner:
    from tests.services.tts.tiny import TINY_TORTOISE

    tortoise = TortoiseSettings(arch=TINY_TORTOISE, batch_size=16, max_mel_tokens=mel_tokens)
    cfg = TtsRunnerConfig(
        weights_dir=root / "weights",
        cache_dir=root / "cache",
        device="cpu",
        tortoise=tortoise,
        bark=BarkSettings(max_gen_duration_s=bark_s),
    )
    return TtsRunner(cfg)


def rtf(runner: TtsRunner, text: str, runs: int, **options: object) -> tuple[float, float]:
    """(median RTF, audio seconds) of in-process synthesis with 1 worker thread."""
    runner.synthesize(text, workers=1, **options)  # warm: weights, voice latents, caches
    rates, audio_s = [], 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        res = runner.synthesize(text, workers=1, **options)
        rates.append((time.perf_counter() - t0) / res.duration_s)
        audio_s = res.duration_s
    return sorted(rates)[len(rates) // 2], audio_s


def _init_worker(root: str, mel_tokens: int, bark_s: float, backend: str) -> None:
    import torch

    torch.set_num_threads(1)
    global _WORKER
    _WORKER = make_runner(Path(root), mel_tokens, bark_s)
    plan = _WORKER.plan("Warm up.", backend=backend, preset="ultra_fast" if backend == "tortoise" else "")
    _WORKER.render_chunk(plan.options, "Warm up.")  # weights, lazy imports, first-call costs


def _render(args: tuple) -> int:
    opts, text = args
    assert _WORKER is not None
    return int(_WORKER.render_chunk(opts, text).size)


def parallel(
    root: Path, text: str, backend: str, preset: str, mel_tokens: int, bark_s: float, workers: int
) -> float:
    """Wall seconds for `workers` processes to render every chunk of `text` (warm start)."""
    plan = make_runner(root, mel_tokens, bark_s).plan(text, backend=backend, preset=preset)
    jobs = [(plan.options, c.text) for c in plan.chunks]
    spawn = multiprocessing.get_context("spawn")  # fresh processes, as replicas are
    init = (str(root), mel_tokens, bark_s, backend)
    with ProcessPoolExecutor(workers, spawn, _init_worker, init) as pool:
        list(pool.map(_render, jobs[:workers]))  # all workers up (each warmed up in its initializer)
        t0 = time.perf_counter()
        samples = sum(pool.map(_render, jobs))
        wall = time.perf_counter() - t0
    print(
        f"    {workers} worker(s): {len(jobs)} chunks, {samples / SAMPLE_RATE:6.1f} s audio in {wall:6.2f} s"
    )
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--presets", default=",".join(PRESETS), help="tortoise presets (comma-separated)")
    ap.add_argument("--mel-tokens", type=int, default=8, help="tiny tortoise: tokens spoken per chunk")
    ap.add_argument("--bark-seconds", type=float, default=0.5, help="tiny bark: seconds spoken per chunk")
    ap.add_argument("--skip", default="", help="comma-separated: espeak,tortoise,bark,parallel")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    load = os.getloadavg()[0]
    print(f"CPU: {os.cpu_count()} cores, load average {load:.1f} (other work slows every figure)")
    with tempfile.TemporaryDirectory(prefix="lihq-tts-bench-") as tmp:
        root = Path(tmp)
        from tests.services.tts.tiny import write_tiny_bark, write_tiny_tortoise

        write_tiny_tortoise(root / "weights")
        write_tiny_bark(root / "weights")
        runner = make_runner(root, a.mel_tokens, a.bark_seconds)
        print(f"{'backend':10s} {'preset':13s} {'audio s':>8s} {'RTF':>7s}")
        if "espeak" not in skip:
            r, s = rtf(runner, TEXT, a.runs, backend="espeak")
            print(f"{'espeak':10s} {'-':13s} {s:8.1f} {r:7.3f}")
        if "tortoise" not in skip:
            for preset in filter(None, a.presets.split(",")):
                r, s = rtf(
                    runner,
                    "Hello there. How are you today?",
                    max(1, a.runs - 2),
                    backend="tortoise",
                    preset=preset,
                )
                print(f"{'tortoise*':10s} {preset:13s} {s:8.1f} {r:7.3f}")
        if "bark" not in skip:
            r, s = rtf(runner, "Hello there. How are you today?", max(1, a.runs - 2), backend="bark")
            print(f"{'bark*':10s} {'-':13s} {s:8.1f} {r:7.3f}")
        print("* tiny random networks: pipeline structure, not real-model cost")
        if "parallel" not in skip:
            for backend, preset, text in (("espeak", "", TEXT * 4), ("tortoise", "ultra_fast", TEXT)):
                print(f"parallel chunks, {backend} {preset}".rstrip() + ":")
                one = parallel(root, text, backend, preset, a.mel_tokens, a.bark_seconds, 1)
                two = parallel(root, text, backend, preset, a.mel_tokens, a.bark_seconds, 2)
                print(f"    speed-up with 2 workers: {one / two:.2f}x")


if __name__ == "__main__":
    main()
