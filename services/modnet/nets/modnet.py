"""MODNet: trimap-free portrait matting (low-resolution, high-resolution and fusion branches).

Upstream: ZHKKKe/MODNet @ 28165a451e4610c9d77cfdf925a94610bb2810fb, `src/models/modnet.py`
(Apache-2.0); paper: Ke et al., "MODNet: Real-Time Trimap-Free Portrait Matting via Objective
Decomposition", AAAI 2022 (arXiv:2011.11961). This file is our own code; module attribute names equal
the keys of the official `modnet_photographic_portrait_matting.ckpt` once its `module.` prefix is gone.

Contract of `MODNet.forward(img, inference)`:
- `img`: (B, 3, H, W) float RGB normalised to [-1, 1] ((x/255 - 0.5) / 0.5), H and W multiples of 32.
- returns `(pred_semantic, pred_detail, pred_matte)`; `pred_matte` is (B, 1, H, W) in [0, 1].
  With `inference=True` (deployment) the two auxiliary heads are skipped and returned as None; with
  `inference=False` they are `sigmoid(conv_lr(...))` at H/16 x W/16 and `sigmoid(conv_hr(...))` at H x W
  (training-time supervision heads; they do not change `pred_matte`).
- Run it in `.eval()`: BatchNorm halves then use their running statistics while the InstanceNorm
  halves of every IBNorm always normalise per sample, so each frame's matte is independent of the
  other frames in a batch.

The backbone is one module reachable under two names, `backbone` and `lr_branch.backbone`, as upstream
builds it: its state dict therefore lists every backbone tensor twice, exactly like the official file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from services.modnet.nets.mobilenetv2 import MobileNetV2Backbone

HR_CHANNELS = 32


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _down(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=1 / factor, mode="bilinear", align_corners=False)


class IBNorm(nn.Module):
    """Batch norm over the first half of the channels, affine-free instance norm over the rest."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.split = channels // 2
        self.bnorm = nn.BatchNorm2d(self.split, affine=True)
        self.inorm = nn.InstanceNorm2d(channels - self.split, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.bnorm(x[:, : self.split].contiguous())
        tail = self.inorm(x[:, self.split :].contiguous())
        return torch.cat((head, tail), dim=1)


class Conv2dIBNormRelu(nn.Module):
    """Conv2d (with bias) -> optional IBNorm -> optional ReLU, in `layers` (checkpoint indices 0, 1)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        with_ibn: bool = True,
        with_relu: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)]
        if with_ibn:
            layers.append(IBNorm(cout))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel gating (Hu et al., 2018): global mean -> FC -> ReLU -> FC -> sigmoid."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return x * gate[:, :, None, None]


class LRBranch(nn.Module):
    """Semantic branch: backbone -> SE on the stride-32 map -> two 5x5 decoders up to stride 8."""

    def __init__(self, backbone: MobileNetV2Backbone) -> None:
        super().__init__()
        enc = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(enc[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc[4], enc[3], 5, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc[3], enc[2], 5, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def forward(
        self, img: torch.Tensor, inference: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (pred_semantic or None, lr8x, enc2x, enc4x)."""
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        lr16x = self.conv_lr16x(_up2(self.se_block(enc32x)))
        lr8x = self.conv_lr8x(_up2(lr16x))
        semantic = None if inference else torch.sigmoid(self.conv_lr(lr8x))
        return semantic, lr8x, enc2x, enc4x


class HRBranch(nn.Module):
    """Detail branch: image + shallow encoder features at strides 4 and 2, guided by the LR branch."""

    def __init__(self, hr: int, enc: tuple[int, ...]) -> None:
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc[0], hr, 1)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc[1], hr, 1)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
        )
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, 1, 1, with_ibn=False, with_relu=False),
        )

    def forward(
        self,
        img: torch.Tensor,
        enc2x: torch.Tensor,
        enc4x: torch.Tensor,
        lr8x: torch.Tensor,
        inference: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """-> (pred_detail or None, hr2x features)."""
        img2x, img4x = _down(img, 2), _down(img, 4)
        feat2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, feat2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _up2(lr8x), img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((_up2(hr4x), feat2x), dim=1))
        if inference:
            return None, hr2x
        detail = torch.sigmoid(self.conv_hr(torch.cat((_up2(hr2x), img), dim=1)))
        return detail, hr2x


class FusionBranch(nn.Module):
    """Fuses the semantic (lr8x) and detail (hr2x) features into the full-resolution alpha matte."""

    def __init__(self, hr: int, enc: tuple[int, ...]) -> None:
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc[2], hr, 5, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr // 2, 3, padding=1),
            Conv2dIBNormRelu(hr // 2, 1, 1, with_ibn=False, with_relu=False),
        )

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr2x = _up2(self.conv_lr4x(_up2(lr8x)))
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        return torch.sigmoid(self.conv_f(torch.cat((_up2(f2x), img), dim=1)))


class MODNet(nn.Module):
    """The full network; see the module docstring for the forward contract."""

    def __init__(self, in_channels: int = 3, hr_channels: int = HR_CHANNELS) -> None:
        super().__init__()
        self.backbone = MobileNetV2Backbone(in_channels)
        self.lr_branch = LRBranch(self.backbone)  # the same module object: tied weights
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)

    def forward(
        self, img: torch.Tensor, inference: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        semantic, lr8x, enc2x, enc4x = self.lr_branch(img, inference)
        detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        matte = self.f_branch(img, lr8x, hr2x)
        return semantic, detail, matte
