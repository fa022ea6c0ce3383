"""PWC-Net's cost volume in plain PyTorch (replaces upstream's CuPy CUDA kernel, models/correlation.py).

Upstream: xuxy09/QVI @ 64bf82f3 (models/correlation.py, CUDA-only); PWC-Net, Sun et al., CVPR 2018.
Definition (displacement d = 4, one-pixel patches, zero padding):

    out[n, (dy + 4) * 9 + (dx + 4), y, x] = mean_c first[n, c, y, x] * second[n, c, y + dy, x + dx]

with `second` read as 0 outside the image. Works on any device and dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_DISPLACEMENT = 4
_SPAN = 2 * MAX_DISPLACEMENT + 1  # 9 displacements per axis -> 81 output channels


def correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Cost volume of two feature maps.

    first, second: (N, C, H, W) of the same shape and dtype. Returns (N, 81, H, W), same dtype.
    Computed one row of displacements at a time: 9 slices of (N, C, 9, H, W), never all 81 at once.
    """
    if first.shape != second.shape:
        raise ValueError(f"correlation: shapes differ {tuple(first.shape)} vs {tuple(second.shape)}")
    _, _, h, w = first.shape
    d = MAX_DISPLACEMENT
    padded = F.pad(second, (d, d, d, d))
    rows = []
    for dy in range(_SPAN):
        band = padded[:, :, dy : dy + h, :]  # (N, C, H, W + 2d)
        shifted = band.unfold(3, w, 1).permute(0, 1, 3, 2, 4)  # (N, C, 9, H, W): dx-shifted copies
        rows.append((first.unsqueeze(2) * shifted).mean(dim=1))  # (N, 9, H, W)
    return torch.cat(rows, dim=1)
