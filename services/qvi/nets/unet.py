"""QVI's refinement UNet (Super SloMo style): attribute names = `model.pt`'s `module.refinenet.*`.

Upstream: xuxy09/QVI @ 64bf82f3, models/UNet2.py (after Jiang et al., "Super SloMo", CVPR 2018).
Own code. Input (N, 20, H, W) float, H and W >= 32 (five 2x average pools); returns the 8-channel
head output (after its leaky ReLU) and the last 32-channel decoder features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.1


class Down(nn.Module):
    """2x average pool, then two convs with leaky ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(cout, cout, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2)
        x = F.leaky_relu(self.conv1(x), _SLOPE)
        return F.leaky_relu(self.conv2(x), _SLOPE)


class Up(nn.Module):
    """Bilinear resize to the skip's size, conv, then conv over [x, skip]."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        x = F.leaky_relu(self.conv1(x), _SLOPE)
        return F.leaky_relu(self.conv2(torch.cat((x, skip), 1)), _SLOPE)


class UNet2(nn.Module):
    def __init__(self, cin: int = 20, cout: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 7, padding=3)
        self.conv2 = nn.Conv2d(32, 32, 7, padding=3)
        self.down1 = Down(32, 64, 5)
        self.down2 = Down(64, 128, 3)
        self.down3 = Down(128, 256, 3)
        self.down4 = Down(256, 512, 3)
        self.down5 = Down(512, 512, 3)
        self.up1 = Up(512, 512)
        self.up2 = Up(512, 256)
        self.up3 = Up(256, 128)
        self.up4 = Up(128, 64)
        self.up5 = Up(64, 32)
        self.conv3 = nn.Conv2d(32, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.conv1(x), _SLOPE)
        s1 = F.leaky_relu(self.conv2(x), _SLOPE)
        s2 = self.down1(s1)
        s3 = self.down2(s2)
        s4 = self.down3(s3)
        s5 = self.down4(s4)
        x = self.down5(s5)
        x = self.up1(x, s5)
        x = self.up2(x, s4)
        x = self.up3(x, s3)
        x = self.up4(x, s2)
        feature = self.up5(x, s1)
        return F.leaky_relu(self.conv3(feature), _SLOPE), feature
