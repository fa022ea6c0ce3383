"""FOMM occlusion-aware generator: encode the source, warp its features by the dense motion, mask
occluded parts, decode the driven frame.

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91
(`modules/generator.py`, MIT), paper: Siarohin et al., NeurIPS 2019. Our own code; attribute names
(`dense_motion_network`, `first`, `down_blocks`, `bottleneck.rN`, `up_blocks`, `final`) are the
official `generator` keys.

The source encoding does not depend on the driving frame, so `encode` runs once per source and
`animate` reuses it for any batch of driving keypoints (upstream re-encodes the source per frame;
the result is the same computation). `forward` = encode + animate, upstream's call signature.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from services.fomm.nets.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from services.fomm.nets.config import GeneratorConfig
from services.fomm.nets.dense_motion import DenseMotion, DenseMotionNetwork
from services.fomm.nets.keypoint_detector import Keypoints


class SourceEncoding(NamedTuple):
    """What the generator needs from the source, whatever the driving frame.

    image (1|B, C, H, W) in [0, 1]; features (1|B, F, H/4, W/4) after `first` + `down_blocks`;
    small (1|B, C, h, w) the source at the motion resolution.
    """

    image: torch.Tensor
    features: torch.Tensor
    small: torch.Tensor


class GeneratorOutput(NamedTuple):
    """prediction (B, C, H, W) in (0, 1); motion: the dense-motion outputs; deformed (B, C, H, W):
    the source warped by the upsampled deformation (computed only when asked: it is for inspection)."""

    prediction: torch.Tensor
    motion: DenseMotion
    deformed: torch.Tensor | None = None


def _width(cfg: GeneratorConfig, level: int) -> int:
    return min(cfg.max_features, cfg.block_expansion * (2**level))


class OcclusionAwareGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig | None = None, align_corners: bool = False) -> None:
        super().__init__()
        cfg = cfg or GeneratorConfig()
        self.cfg = cfg
        self.align_corners = align_corners
        self.dense_motion_network = DenseMotionNetwork(cfg.dense_motion, align_corners)
        self.first = SameBlock2d(cfg.num_channels, cfg.block_expansion, kernel_size=7, padding=3)
        n = cfg.num_down_blocks
        self.down_blocks = nn.ModuleList(DownBlock2d(_width(cfg, i), _width(cfg, i + 1)) for i in range(n))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(_width(cfg, n - i), _width(cfg, n - i - 1)) for i in range(n)
        )
        self.bottleneck = nn.Sequential()
        for i in range(cfg.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(_width(cfg, n)))
        self.final = nn.Conv2d(cfg.block_expansion, cfg.num_channels, kernel_size=(7, 7), padding=(3, 3))

    def warp(self, x: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """grid_sample `x` (B, C, H, W) with `deformation` (B, h, w, 2), bilinearly resized to H x W
        first when the sizes differ (align_corners=False for that resize, as upstream)."""
        h, w = x.shape[2:]
        if deformation.shape[1:3] != (h, w):
            grid = F.interpolate(
                deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False
            )
            deformation = grid.permute(0, 2, 3, 1)
        return F.grid_sample(x, deformation.to(x.dtype), align_corners=self.align_corners)

    def encode(self, source: torch.Tensor) -> SourceEncoding:
        """source (B, C, H, W) RGB in [0, 1] -> SourceEncoding."""
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        return SourceEncoding(source, features, self.dense_motion_network.downsample(source))

    def animate(
        self, enc: SourceEncoding, kp_driving: Keypoints, kp_source: Keypoints, *, with_deformed: bool = False
    ) -> GeneratorOutput:
        """Drive an encoded source (batch 1 or B) by B sets of (normalised) driving keypoints."""
        b = kp_driving.value.shape[0]
        motion = self.dense_motion_network.forward_small(enc.small, kp_driving, kp_source)
        features = enc.features
        if features.shape[0] != b:
            features = features.expand(b, *features.shape[1:])
        out = self.warp(features, motion.deformation)
        if motion.occlusion_map is not None:
            occlusion = motion.occlusion_map
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        prediction = torch.sigmoid(self.final(out))
        deformed = None
        if with_deformed:
            image = enc.image if enc.image.shape[0] == b else enc.image.expand(b, *enc.image.shape[1:])
            deformed = self.warp(image, motion.deformation)
        return GeneratorOutput(prediction, motion, deformed)

    def forward(
        self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints, with_deformed: bool = True
    ) -> GeneratorOutput:
        return self.animate(self.encode(source), kp_driving, kp_source, with_deformed=with_deformed)
