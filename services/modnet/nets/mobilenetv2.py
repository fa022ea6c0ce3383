"""MobileNetV2 encoder as MODNet uses it (features only, no classifier).

Upstream: ZHKKKe/MODNet @ 28165a451e4610c9d77cfdf925a94610bb2810fb,
`src/models/backbones/{mobilenetv2,wrapper}.py` (itself adapted from thuyngch/Human-Segmentation-PyTorch);
architecture from Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
License of the upstream code: Apache-2.0. This file is our own code; only the layer layout (and so the
checkpoint key names `model.features.<i>...`) follows upstream.

Layout (width multiplier 1.0, expansion 6): `features[0]` = 3x3/2 conv-BN-ReLU6 to 32 channels;
`features[1..17]` = inverted residual blocks; `features[18]` = 1x1 conv-BN-ReLU6 to 1280 channels.
`MobileNetV2Backbone.forward` returns the five encoder taps at strides 2, 4, 8, 16 and 32.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, out channels, repeats, first stride) per stage, as in the MobileNetV2 paper (Table 2).
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# Encoder taps: the output of features[i] for i in TAPS gives strides 2, 4, 8, 16, 32.
TAPS = (1, 3, 6, 13, 18)
ENC_CHANNELS = (16, 24, 32, 96, 1280)


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when expansion is 1) -> depthwise 3x3 -> linear 1x1 projection.

    The residual shortcut is used when the block keeps both resolution and width. Submodule indices
    in `conv` follow the checkpoint: with expansion [0,1,(2)] expand, [3,4,(5)] depthwise, [6,7]
    project; without it [0,1,(2)] depthwise, [3,4] project (ReLU6 slots hold no weights).
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(cin * expansion)
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += _conv_bn_relu6(cin, hidden, 1, 1)
        layers += _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class MobileNetV2Features(nn.Module):
    """The `features` stack of MobileNetV2 (19 modules); holds weights only, run by the backbone."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(*_conv_bn_relu6(in_channels, STEM_CHANNELS, 3, 2))]
        cin = STEM_CHANNELS
        for expansion, cout, repeats, stride in STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        blocks.append(nn.Sequential(*_conv_bn_relu6(cin, HEAD_CHANNELS, 1, 1)))
        self.features = nn.Sequential(*blocks)


class MobileNetV2Backbone(nn.Module):
    """Encoder: (B, 3, H, W) normalised RGB -> five feature maps at strides 2, 4, 8, 16, 32 with
    ENC_CHANNELS channels. H and W must be multiples of 32 for the decoder's 2x upsamplings to line up."""

    enc_channels = ENC_CHANNELS

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.model = MobileNetV2Features(in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps: list[torch.Tensor] = []
        for i, block in enumerate(self.model.features):
            x = block(x)
            if i in TAPS:
                taps.append(x)
        return taps
