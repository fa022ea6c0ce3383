"""FOMM dense motion network: from K local affine motions to one dense backward flow + occlusion.

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91
(`modules/dense_motion.py`, MIT), paper: Siarohin et al., NeurIPS 2019 (eqs. 4, 6, 7, sec. 3.2).
Our own code; attribute names (`hourglass`, `mask`, `occlusion`, `down`) are the official keys
under `dense_motion_network.` in the generator state dict.

`align_corners` is what `F.grid_sample` is told. The vectors (upstream run on today's torch) use
False, torch's default since 1.3; the checkpoints were trained on torch 1.0, whose grid_sample
behaved as align_corners=True. See services/fomm/README section "align_corners".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from services.fomm.nets.blocks import AntiAliasInterpolation2d, Hourglass, coordinate_grid, keypoint_heatmaps
from services.fomm.nets.config import DenseMotionConfig
from services.fomm.nets.keypoint_detector import Keypoints


class DenseMotion(NamedTuple):
    """Outputs at the motion resolution h x w (64² for vox-256).

    deformation (B, h, w, 2): grid for grid_sample, (x, y); mask (B, K+1, h, w) softmax weights,
    index 0 = background (identity); sparse_deformed (B, K+1, C, h, w); occlusion_map (B, 1, h, w)
    in (0, 1) or None.
    """

    deformation: torch.Tensor
    mask: torch.Tensor
    sparse_deformed: torch.Tensor
    occlusion_map: torch.Tensor | None


def _apply_2x2(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """m (..., 2, 2) times column vectors v (..., 2), written elementwise (autocast leaves it in fp32)."""
    x, y = v[..., 0], v[..., 1]
    return torch.stack([m[..., 0, 0] * x + m[..., 0, 1] * y, m[..., 1, 0] * x + m[..., 1, 1] * y], dim=-1)


class DenseMotionNetwork(nn.Module):
    def __init__(self, cfg: DenseMotionConfig | None = None, align_corners: bool = False) -> None:
        super().__init__()
        cfg = cfg or DenseMotionConfig()
        self.cfg = cfg
        self.align_corners = align_corners
        in_features = (cfg.num_kp + 1) * (cfg.num_channels + 1)
        self.hourglass = Hourglass(cfg.block_expansion, in_features, cfg.num_blocks, cfg.max_features)
        out = self.hourglass.out_filters
        self.mask = nn.Conv2d(out, cfg.num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        self.occlusion: nn.Conv2d | None = None
        if cfg.estimate_occlusion_map:
            self.occlusion = nn.Conv2d(out, 1, kernel_size=(7, 7), padding=(3, 3))
        if cfg.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(cfg.num_channels, cfg.scale_factor)

    def downsample(self, image: torch.Tensor) -> torch.Tensor:
        """The source at the motion resolution (B, C, H, W) -> (B, C, h, w)."""
        return self.down(image) if self.cfg.scale_factor != 1 else image

    def heatmap_difference(
        self, small: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints
    ) -> torch.Tensor:
        """(B, K+1, 1, h, w): Gaussian(driving) - Gaussian(source), with a zero background channel."""
        b = kp_driving.value.shape[0]
        h, w = small.shape[2:]
        var = self.cfg.kp_variance
        diff = keypoint_heatmaps(kp_driving.value, h, w, var) - keypoint_heatmaps(kp_source.value, h, w, var)
        zeros = torch.zeros(b, 1, h, w, dtype=diff.dtype, device=diff.device)
        return torch.cat([zeros, diff], dim=1).unsqueeze(2)

    def sparse_motions(self, h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """(B, K+1, h, w, 2): for each keypoint, driving -> source coordinates under its local affine
        motion (index 0 = identity). Computed in float32 even under autocast."""
        kd, ks = kp_driving.value.float(), kp_source.value.float()
        b, k = kd.shape[:2]
        with torch.autocast(device_type=kd.device.type, enabled=False):
            identity = coordinate_grid(h, w, kd.dtype, kd.device).view(1, 1, h, w, 2)
            coords = identity - kd.view(b, k, 1, 1, 2)
            if kp_driving.jacobian is not None and kp_source.jacobian is not None:
                jac = torch.matmul(kp_source.jacobian.float(), torch.inverse(kp_driving.jacobian.float()))
                coords = _apply_2x2(jac.view(jac.shape[0], k, 1, 1, 2, 2), coords)
            to_source = coords + ks.view(ks.shape[0], k, 1, 1, 2)
            return torch.cat([identity.expand(b, 1, h, w, 2), to_source.expand(b, k, h, w, 2)], dim=1)

    def deform_sparse(self, small: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """Warp the small source by each of the K+1 motions: (B, K+1, C, h, w)."""
        b, n, h, w, _ = motions.shape
        c = small.shape[1]
        src = small.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
        grid = motions.reshape(b * n, h, w, 2).to(src.dtype)
        out = F.grid_sample(src, grid, align_corners=self.align_corners)
        return out.view(b, n, c, h, w)

    def forward_small(self, small: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        """Like forward, from a source already at the motion resolution (B or 1, C, h, w)."""
        b = kp_driving.value.shape[0]
        if small.shape[0] != b:
            small = small.expand(b, *small.shape[1:])
        h, w = small.shape[2:]
        heat = self.heatmap_difference(small, kp_driving, kp_source)
        motions = self.sparse_motions(h, w, kp_driving, kp_source)
        sparse_deformed = self.deform_sparse(small, motions)
        x = torch.cat([heat.to(sparse_deformed.dtype), sparse_deformed], dim=2).view(b, -1, h, w)
        features = self.hourglass(x)
        mask = F.softmax(self.mask(features), dim=1)
        deformation = (motions.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 1)
        occlusion = torch.sigmoid(self.occlusion(features)) if self.occlusion is not None else None
        return DenseMotion(deformation, mask, sparse_deformed, occlusion)

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        """source (B or 1, C, H, W) in [0, 1]; keypoints (B, K, ...) and (B or 1, K, ...)."""
        return self.forward_small(self.downsample(source), kp_driving, kp_source)
