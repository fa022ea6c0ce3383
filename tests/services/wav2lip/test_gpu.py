"""On CUDA: the public vectors pass on the GPU (TF32 off), and autocast stays close to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lihq.verify import run_verify
from services.wav2lip.audio import mel_chunk_starts
from services.wav2lip.objects import MelObject
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
from services.wav2lip.track import fixed_track
from tests.services.wav2lip.conftest import S3FD_VECTORS, W2L_VECTORS, needs_verify_sets

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@needs_verify_sets
@pytest.mark.parametrize("model, vectors", [("wav2lip", W2L_VECTORS), ("s3fd", S3FD_VECTORS)])
def test_public_vectors_on_cuda(model: str, vectors: Path) -> None:
    rows = run_verify(model, vectors, 1)  # the verifiers use device "auto": CUDA here
    assert [r for r in rows if not r.ok] == []


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_close_to_fp32_and_segments_independent(weights_dir: Path, precision: str) -> None:
    runner = Wav2LipRunner(Wav2LipRunnerConfig(device="cuda", batch_size=8, weights_dir=weights_dir))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (16, 128, 128, 3), dtype=np.uint8)
    mel = MelObject(
        mel=rng.uniform(-4, 2, (80, 80)).astype(np.float32), starts=mel_chunk_starts(80, 25.0), fps=25.0
    )
    track = fixed_track([10, 120, 12, 116], 16, 128, 128)
    ref = runner.lip_sync(frames, 0, 25.0, mel, track, precision="fp32")
    low = runner.lip_sync(frames, 0, 25.0, mel, track, precision=precision)
    assert np.abs(low.astype(int) - ref.astype(int)).max() <= 16
    parts = [
        runner.lip_sync(frames[s : s + 5], s, 25.0, mel, track, precision="fp32") for s in (0, 5, 10, 15)
    ]
    assert np.abs(np.concatenate(parts).astype(int) - ref.astype(int)).max() <= 1
