"""S3FD face detector network, our own code.

Upstream: Rudrabha/Wav2Lip @ 5c90fa9b `face_detection/detection/sfd/net_s3fd.py` (a copy of
1adrianb/face-alignment's sfd, BSD-3-Clause), architecture and checkpoint key names only. Paper:
S. Zhang et al., "S3FD: Single Shot Scale-invariant Face Detector", ICCV 2017. Weights:
`s3fd-619a316812.pth` (a plain state dict of 65 tensors, BSD-3-Clause via face-alignment).

A VGG16 trunk (conv1_1 .. conv5_3, max-pool 2x2 after each stage), fc6 (3x3, padding 3) and fc7
(1x1) as convolutions, two extra stages (conv6, conv7), L2-normalised taps of conv3_3 / conv4_3 /
conv5_3 with learned per-channel scales, and a (classification, regression) 3x3 head per tap.

`forward(x)`: x (B, 3, H, W) float32, **RGB** minus the per-channel means (104, 117, 123) applied to
R, G, B in that order (what upstream's detector does after flipping the BGR frame), range about
[-123, 151]. Returns [cls1, reg1, ..., cls6, reg6] for strides 4, 8, 16, 32, 64, 128: cls (B, 2, h, w)
pre-softmax scores (background, face) and reg (B, 4, h, w) box offsets. cls1 already has upstream's
max-out background: the max of its first 3 of 4 channels, then channel 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MEAN_RGB = (104.0, 117.0, 123.0)
STRIDES = (4, 8, 16, 32, 64, 128)
# (name, cin, cout) of the 3x3 trunk convs; a 2x2 max-pool follows each stage's last conv
_VGG_STAGES = (
    (("conv1_1", 3, 64), ("conv1_2", 64, 64)),
    (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
    (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)),
    (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)),
    (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)),
)
# (tap name, channels, number of classification channels)
_HEADS = (
    ("conv3_3_norm", 256, 4),
    ("conv4_3_norm", 512, 2),
    ("conv5_3_norm", 512, 2),
    ("fc7", 1024, 2),
    ("conv6_2", 512, 2),
    ("conv7_2", 256, 2),
)


class L2Norm(nn.Module):
    """x / (||x||_2 over channels + 1e-10) * weight[c]. Key: `weight` (C,), initialised to `scale`."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.eps = 1e-10
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


class S3FD(nn.Module):
    """S3FD with the attribute names of the official state dict (conv1_1 ... conv7_2_mbox_loc)."""

    def __init__(self) -> None:
        super().__init__()
        for stage in _VGG_STAGES:
            for name, cin, cout in stage:
                setattr(self, name, nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1))
        self.fc6 = nn.Conv2d(512, 1024, kernel_size=3, stride=1, padding=3)
        self.fc7 = nn.Conv2d(1024, 1024, kernel_size=1)
        self.conv6_1 = nn.Conv2d(1024, 256, kernel_size=1)
        self.conv6_2 = nn.Conv2d(256, 512, kernel_size=3, stride=2, padding=1)
        self.conv7_1 = nn.Conv2d(512, 128, kernel_size=1)
        self.conv7_2 = nn.Conv2d(128, 256, kernel_size=3, stride=2, padding=1)
        self.conv3_3_norm = L2Norm(256, 10.0)
        self.conv4_3_norm = L2Norm(512, 8.0)
        self.conv5_3_norm = L2Norm(512, 5.0)
        for tap, ch, n_cls in _HEADS:
            setattr(self, f"{tap}_mbox_conf", nn.Conv2d(ch, n_cls, kernel_size=3, stride=1, padding=1))
            setattr(self, f"{tap}_mbox_loc", nn.Conv2d(ch, 4, kernel_size=3, stride=1, padding=1))

    def _trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six feature maps the heads read: conv3_3, conv4_3, conv5_3 (raw), fc7, conv6_2, conv7_2."""
        taps = []
        for i, stage in enumerate(_VGG_STAGES):
            for name, _, _ in stage:
                x = F.relu(getattr(self, name)(x))
            if i >= 2:
                taps.append(x)
            x = F.max_pool2d(x, 2, 2)
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        taps.append(x)
        x = F.relu(self.conv6_2(F.relu(self.conv6_1(x))))
        taps.append(x)
        x = F.relu(self.conv7_2(F.relu(self.conv7_1(x))))
        taps.append(x)
        return taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = self._trunk(x)
        taps[0] = self.conv3_3_norm(taps[0])
        taps[1] = self.conv4_3_norm(taps[1])
        taps[2] = self.conv5_3_norm(taps[2])
        outs: list[torch.Tensor] = []
        for (tap, _, _), feat in zip(_HEADS, taps, strict=True):
            cls = getattr(self, f"{tap}_mbox_conf")(feat)
            if cls.shape[1] == 4:  # max-out background: max of 3 background scores, then the face score
                cls = torch.cat([cls[:, :3].amax(dim=1, keepdim=True), cls[:, 3:]], dim=1)
            outs += [cls, getattr(self, f"{tap}_mbox_loc")(feat)]
        return outs
