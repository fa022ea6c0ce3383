"""FOMM keypoint detector: K keypoints (soft-argmax of heatmaps) and a 2x2 Jacobian per keypoint.

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91
(`modules/keypoint_detector.py`, MIT), paper: Siarohin et al., NeurIPS 2019. Our own code; the
attribute names (`predictor`, `kp`, `jacobian`, `down`) are the official `kp_detector` keys.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from services.fomm.nets.blocks import AntiAliasInterpolation2d, Hourglass, coordinate_grid
from services.fomm.nets.config import KPDetectorConfig


class Keypoints(NamedTuple):
    """`value` (B, K, 2) float, (x, y) in [-1, 1]; `jacobian` (B, K, 2, 2) row-major, or None."""

    value: torch.Tensor
    jacobian: torch.Tensor | None = None


class KPDetector(nn.Module):
    """Image (B, 3, H, W) RGB float in [0, 1] -> Keypoints.

    The image is blurred and subsampled by `scale_factor` (256 -> 64), an hourglass predicts K
    heatmaps (softmax over space with `temperature`) whose expected coordinates are the keypoints;
    the Jacobians are the heatmap-weighted averages of a 4K-channel regression map.
    """

    def __init__(self, cfg: KPDetectorConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or KPDetectorConfig()
        self.cfg = cfg
        self.predictor = Hourglass(cfg.block_expansion, cfg.num_channels, cfg.num_blocks, cfg.max_features)
        feats = self.predictor.out_filters
        self.kp = nn.Conv2d(feats, cfg.num_kp, kernel_size=(7, 7), padding=cfg.pad)
        self.num_jacobian_maps = 1 if cfg.single_jacobian_map else cfg.num_kp
        self.jacobian: nn.Conv2d | None = None
        if cfg.estimate_jacobian:
            self.jacobian = nn.Conv2d(feats, 4 * self.num_jacobian_maps, kernel_size=(7, 7), padding=cfg.pad)
        if cfg.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(cfg.num_channels, cfg.scale_factor)

    def _soft_argmax(self, heatmap: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) probabilities -> (B, K, 2) expected (x, y)."""
        _, _, h, w = heatmap.shape
        grid = coordinate_grid(h, w, heatmap.dtype, heatmap.device).view(1, 1, h, w, 2)
        return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))

    def _jacobians(self, features: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
        assert self.jacobian is not None
        b, k, h, w = heatmap.shape
        maps = self.jacobian(features).reshape(b, self.num_jacobian_maps, 4, h, w)
        weighted = (heatmap.unsqueeze(2) * maps).view(b, k, 4, h * w)
        return weighted.sum(dim=-1).view(b, k, 2, 2)

    def forward(self, image: torch.Tensor) -> Keypoints:
        if self.cfg.scale_factor != 1:
            image = self.down(image)
        features = self.predictor(image)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, h * w) / self.cfg.temperature, dim=2).view(b, k, h, w)
        value = self._soft_argmax(heatmap)
        jacobian = self._jacobians(features, heatmap) if self.jacobian is not None else None
        return Keypoints(value, jacobian)
