"""`compile=True` (torch.compile behind a flag, for GPUs) traces the real Wav2Lip generator on CPU and
gives the eager result. The aot_eager backend keeps the test cheap: dynamo + AOT tracing of the whole
net, no code generation (LIHQ_TORCH_COMPILE_BACKEND; production uses inductor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from services.wav2lip.audio import mel_chunk_starts
from services.wav2lip.objects import MelObject
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.track import fixed_track


def test_compiled_generator_matches_eager(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIHQ_TORCH_COMPILE_BACKEND", "aot_eager")
    n, size = 2, 128
    frames = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    mel = np.random.default_rng(1).uniform(-4, 2, (80, 16 + 4 * n)).astype(np.float32)
    mel_obj = MelObject(mel=mel, starts=mel_chunk_starts(mel.shape[1], 25.0), fps=25.0)
    track = fixed_track([16, 120, 16, 112], n, size, size)
    out = {}
    for flag in (False, True):
        cfg = Wav2LipRunnerConfig(device="cpu", batch_size=n, weights_dir=weights_dir, compile=flag)
        runner = Wav2LipRunner(cfg)
        out[flag] = runner.lip_sync(frames, 0, 25.0, mel_obj, track, "wav2lip_gan")
        assert isinstance(runner._nets["wav2lip_gan"], torch._dynamo.eval_frame.OptimizedModule) == flag
    assert np.abs(out[True].astype(int) - out[False].astype(int)).max() <= 1
