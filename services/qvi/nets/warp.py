"""Backward warping and QVI's Gaussian forward splatting (flow reversal).

Upstream: xuxy09/QVI @ 64bf82f3, `backwarp` in models/QVI.py and models/forward_warp_gaussian.py
(Xu et al., "Quadratic Video Interpolation", NeurIPS 2019). Own implementation of the same maths.

Flows are (N, 2, H, W) float32 in pixels: channel 0 = horizontal (x, u), channel 1 = vertical (y, v).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pixel_grid(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(h, device=like.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=like.device, dtype=torch.float32).view(1, 1, w)
    return xs, ys


def backwarp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `img` at (x + u, y + v): out[y, x] = img[y + v, x + u], bilinear, zeros outside.

    img (N, C, H, W), flow (N, 2, H, W) -> (N, C, H, W). As upstream, positions are normalised with
    2 * (p / size - 0.5) and sampled with align_corners=False, i.e. with a half-pixel offset; that
    offset is part of what the trained weights expect, so it is kept.
    """
    _, _, h, w = img.shape
    xs, ys = _pixel_grid(h, w, img)
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    x = 2 * (x / w - 0.5)
    y = 2 * (y / h - 0.5)
    grid = torch.stack((x, y), dim=3).to(img.dtype)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def forward_splat(img: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Splat every source pixel of `img` to the 4 integer neighbours of (x + u, y + v).

    Each corner (x + floor(u) + b, y + floor(v) + a), a, b in {0, 1}, receives img * w and w, with the
    Gaussian weight w = exp(-((fv - a)^2 + (fu - b)^2)), fu = u - floor(u), fv = v - floor(v); the
    contributions add up; corners outside the image are dropped.

    img (N, C, H, W), flow (N, 2, H, W) float32. Returns (weighted sum (N, C, H, W), weight sum
    (N, 1, H, W)) in float32; the weight sum is the same for every channel.
    """
    n, c, h, w = img.shape
    img = img.float()
    fu, fv = flow[:, 0].float(), flow[:, 1].float()  # (N, H, W)
    u0, v0 = torch.floor(fu), torch.floor(fv)
    xs, ys = _pixel_grid(h, w, flow)
    base_x = (xs + u0).long()
    base_y = (ys + v0).long()
    batch = (torch.arange(n, device=flow.device) * (h * w)).view(n, 1, 1)
    values = img.permute(0, 2, 3, 1)  # (N, H, W, C)
    out = torch.zeros(n * h * w, c + 1, device=img.device, dtype=torch.float32)
    for a in (0, 1):
        for b in (0, 1):
            tx, ty = base_x + b, base_y + a
            inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
            weight = torch.exp(-((fv - v0 - a) ** 2 + (fu - u0 - b) ** 2)) * inside
            index = (batch + ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).reshape(-1)
            contrib = torch.cat([values * weight.unsqueeze(-1), weight.unsqueeze(-1)], dim=-1)
            out.index_add_(0, index, contrib.reshape(-1, c + 1))
    out = out.view(n, h, w, c + 1).permute(0, 3, 1, 2)
    return out[:, :c].contiguous(), out[:, c:].contiguous()


def reverse_flow(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QVI's flow reversal: F_t->1 from F_1->t by splatting the flow with itself and negating.

    flow (N, 2, H, W) float32 -> (reversed flow (N, 2, H, W), weight sum (N, 1, H, W)). Pixels that
    received no splat (weight sum 0) get flow 0.
    """
    total, norm = forward_splat(flow, flow)
    hit = norm > 0
    return torch.where(hit, -total / torch.where(hit, norm, torch.ones_like(norm)), 0.0), norm
