"""Building blocks shared by the FOMM networks: conv/BatchNorm blocks, the hourglass, the
anti-aliased downsampler, coordinate grids and keypoint heatmaps.

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91
(`modules/util.py`, MIT), paper: Siarohin et al., NeurIPS 2019. Our own code; submodule attribute
names equal the official checkpoint keys (`conv`, `norm`, `conv1`, `norm2`, `encoder.down_blocks.N`,
`decoder.up_blocks.N`, `down.weight`, ...).

Upstream uses a synchronized BatchNorm for multi-GPU training; in eval mode it is plain
`F.batch_norm` with the running statistics (eps 1e-5), i.e. `nn.BatchNorm2d`, which we use.
Coordinates follow upstream: a pixel grid spans [-1, 1] with -1 and 1 at the centres of the corner
pixels, (x, y) order in the last dimension.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def coordinate_grid(
    height: int, width: int, dtype: torch.dtype, device: torch.device | None = None
) -> torch.Tensor:
    """(H, W, 2) grid of (x, y) in [-1, 1]; x varies along W. Same float32 arithmetic as upstream."""
    xs = torch.arange(width, dtype=dtype, device=device)
    ys = torch.arange(height, dtype=dtype, device=device)
    xs = 2 * (xs / (width - 1)) - 1
    ys = 2 * (ys / (height - 1)) - 1
    grid_x = xs.view(1, width).expand(height, width)
    grid_y = ys.view(height, 1).expand(height, width)
    return torch.stack([grid_x, grid_y], dim=2)


def keypoint_heatmaps(kp_value: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Unnormalised Gaussians around keypoints: (B, K, 2) -> (B, K, H, W), exp(-|p - kp|² / (2 var))."""
    grid = coordinate_grid(height, width, kp_value.dtype, kp_value.device)
    diff = grid.view(1, 1, height, width, 2) - kp_value.view(*kp_value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class SameBlock2d(nn.Module):
    """conv -> BN -> ReLU at the same resolution."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_ch, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv -> BN -> ReLU -> 2x2 average pooling (halves H and W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_ch, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock2d(nn.Module):
    """nearest x2 upsampling -> conv -> BN -> ReLU (doubles H and W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_ch, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(channels, affine=True)
        self.norm2 = nn.BatchNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        h = self.conv2(F.relu(self.norm2(h)))
        return h + x


def _width(block_expansion: int, max_features: int, level: int) -> int:
    """Channels at hourglass depth `level` (0 = full resolution)."""
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """`num_blocks` DownBlock2d; returns the input and every block's output (for skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            c_in = in_features if i == 0 else _width(block_expansion, max_features, i)
            blocks.append(DownBlock2d(c_in, _width(block_expansion, max_features, i + 1)))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]
        for block in self.down_blocks:
            feats.append(block(feats[-1]))
        return feats


class HourglassDecoder(nn.Module):
    """UpBlock2d from the deepest level up, concatenating the encoder's skip after each block."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for level in reversed(range(num_blocks)):
            deepest = level == num_blocks - 1
            c_in = (1 if deepest else 2) * _width(block_expansion, max_features, level + 1)
            blocks.append(UpBlock2d(c_in, _width(block_expansion, max_features, level)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out = feats[-1]
        for block, skip in zip(self.up_blocks, reversed(feats[:-1]), strict=True):
            out = torch.cat([block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style encoder/decoder; output has `block_expansion + in_features` channels, input size."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur (sigma = (1/scale - 1) / 2) then strided subsampling by int(1/scale).

    The depthwise kernel is a persistent buffer named `weight` (the official checkpoints store it);
    it is computed here at construction and replaced by the checkpoint's on load.
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1.0 / scale - 1.0) / 2.0
        size = 2 * round(sigma * 4) + 1
        self.pad_before = size // 2
        self.pad_after = self.pad_before - 1 if size % 2 == 0 else self.pad_before
        self.scale = scale
        self.step = int(1.0 / scale)
        self.groups = channels
        self.register_buffer("weight", self._kernel(channels, size, sigma))

    @staticmethod
    def _kernel(channels: int, size: int, sigma: float) -> torch.Tensor:
        r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
        k2 = g.view(-1, 1) * g.view(1, -1)
        k2 = k2 / k2.sum()
        return k2.view(1, 1, size, size).repeat(channels, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        p0, p1 = self.pad_before, self.pad_after
        x = F.pad(x, (p0, p1, p0, p1))
        x = F.conv2d(x, self.weight.to(x.dtype), groups=self.groups)
        return x[:, :, :: self.step, :: self.step]
