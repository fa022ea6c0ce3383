"""`lihq verify s3fd --vectors DIR --seed N`: our S3FD net + post-processing against upstream's vectors.

Synthesizes `s3fd.pth` (a plain state dict, the official layout) from the seed, loads it through the
real loader (`Wav2LipRunner` -> `load_s3fd`) and compares, for every image of `s3fd_vectors.npz`:
net_input (exact), cls1..6 / reg1..6 (atol 2e-5), and detections_x1y1x2y2 (exact) from the runner's
batched detection path. It also checks that the shortcut we take (the top-scoring candidate) equals
the first box of the full upstream candidates -> NMS -> threshold list (exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lihq.verify import VerifyRow, synthesize_for
from services.wav2lip.detect import decode_all, detections, net_input, to_rect
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig

TOL_MAPS = 2e-5


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _rects(rects: list) -> np.ndarray:
    """(N, 4) int64, a row of -1 where there is no detection."""
    return np.array([r if r is not None else (-1, -1, -1, -1) for r in rects], dtype=np.int64).reshape(-1, 4)


def _nms_path(boxes: torch.Tensor, scores: torch.Tensor) -> np.ndarray:
    out = []
    for b, s in zip(boxes.cpu().numpy(), scores.cpu().numpy(), strict=True):
        kept = detections(b, s)
        out.append(to_rect(kept[0]) if len(kept) else None)
    return _rects(out)


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Every README output of the set in `vectors`, for synthetic weights of `seed`."""
    path = synthesize_for("s3fd", seed, workdir, vectors)[0]
    runner = Wav2LipRunner(Wav2LipRunnerConfig(device="auto", s3fd_path=str(path), detect_batch_size=16))
    ref = np.load(vectors / "s3fd_vectors.npz")
    frames_rgb = np.ascontiguousarray(ref["images_bgr_u8"][..., ::-1])
    x = net_input(frames_rgb, runner.device)
    net = runner._net("s3fd")  # noqa: SLF001 - the runner's own loaded net, as production uses it
    with torch.inference_mode():
        outs = net(x)
    rows = [VerifyRow("s3fd", "net_input", _max_err(x.cpu().numpy(), ref["net_input"]), 0.0)]
    for i, t in enumerate(outs):
        name = f"{'cls' if i % 2 == 0 else 'reg'}{i // 2 + 1}"
        rows.append(VerifyRow("s3fd", name, _max_err(t.float().cpu().numpy(), ref[name]), TOL_MAPS))
    want = ref["detections_x1y1x2y2"].astype(np.int64)
    ours = _rects(runner.detect(frames_rgb))
    full = _nms_path(*decode_all(outs))
    rows.append(VerifyRow("s3fd", "detections_x1y1x2y2", _max_err(ours, want), 0.0))
    rows.append(VerifyRow("s3fd", "detections via full NMS path", _max_err(full, want), 0.0))
    return rows
