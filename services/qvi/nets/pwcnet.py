"""PWC-Net optical flow as used by QVI (attribute names = keys of `pwc-checkpoint.pt` and of
`model.pt`'s `module.flownet.*`).

Upstream: xuxy09/QVI @ 64bf82f3, models/PWCNetnew.py (itself after sniklaus/pytorch-pwc, GPL-3.0);
paper: Sun et al., "PWC-Net", CVPR 2018. Own code; the layer layout, the per-level warp scales and the
flow scaling (x20, resize to multiples of 64) are architecture facts of the checkpoint.

Inputs are mean-subtracted RGB (N, 3, H, W) float; the flow is (N, 2, H, W) in pixels of the input
size, channel 0 = x, channel 1 = y, and maps `first` to `second` (first[y, x] ~ second[y + v, x + u]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from services.qvi.nets.correlation import correlation

_FEATURES = (3, 16, 32, 64, 96, 128, 196)  # extractor channels, input then levels 1..6
_DENSE = (128, 128, 96, 64, 32)  # decoder's densely connected conv widths
_LEVEL_NAMES = {2: "moduleTwo", 3: "moduleThr", 4: "moduleFou", 5: "moduleFiv", 6: "moduleSix"}
_WARP_SCALE = {2: 5.0, 3: 2.5, 4: 1.25, 5: 0.625}  # flow (in 1/20 px units) -> pixels at that level
FLOW_SCALE = 20.0


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=0.1, inplace=False)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


class Extractor(nn.Module):
    """Six strided 3-conv blocks: features at 1/2 .. 1/64 of the input size."""

    def __init__(self) -> None:
        super().__init__()
        for i, name in enumerate(
            ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix")
        ):
            cin, cout = _FEATURES[i], _FEATURES[i + 1]
            block = nn.Sequential(
                _conv(cin, cout, stride=2), _lrelu(), _conv(cout, cout), _lrelu(), _conv(cout, cout), _lrelu()
            )
            setattr(self, name, block)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for name in ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv", "moduleSix"):
            x = getattr(self, name)(x)
            out.append(x)
        return out


def _decoder_in(level: int) -> int:
    """Input channels of a level's decoder: cost volume (+ features, upsampled flow and feature)."""
    return 81 if level == 6 else 81 + _FEATURES[level] + 2 + 2


def warp_features(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """PWC-Net's backward warp of `feat` by `flow` (pixels), zeroing pixels that sample outside.

    Grid: linspace(-1, 1, size) plus flow / ((size - 1) / 2), sampled with align_corners=False (as the
    reference vectors were made); a ones channel sampled along marks where all 4 taps were inside.
    """
    n, _, h, w = flow.shape
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, 1, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, 1, h, 1)
    fx = flow[:, 0:1] / ((feat.shape[3] - 1.0) / 2.0)
    fy = flow[:, 1:2] / ((feat.shape[2] - 1.0) / 2.0)
    grid = torch.cat([gx + fx, gy + fy], dim=1).permute(0, 2, 3, 1)
    ones = feat.new_ones(n, 1, feat.shape[2], feat.shape[3])
    sampled = F.grid_sample(
        torch.cat([feat, ones], 1),
        grid.to(feat.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    mask = (sampled[:, -1:] > 0.999).to(sampled.dtype)
    return sampled[:, :-1] * mask


class Decoder(nn.Module):
    """One pyramid level: cost volume -> dense conv stack -> flow (and features for the next level)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        cin = _decoder_in(level)
        if level < 6:
            prev = _decoder_in(level + 1) + sum(_DENSE)
            self.moduleUpflow = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
            self.moduleUpfeat = nn.ConvTranspose2d(prev, 2, 4, stride=2, padding=1)
        names = ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv")
        for name, width in zip(names, _DENSE, strict=True):
            setattr(self, name, nn.Sequential(_conv(cin, width), _lrelu()))
            cin += width
        self.moduleSix = nn.Sequential(_conv(cin, 2))

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, previous: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow, features) of this level from the two feature maps and the coarser level's output."""
        if previous is None:
            feat = F.leaky_relu(correlation(first, second), 0.1)
        else:
            flow = self.moduleUpflow(previous[0])
            upfeat = self.moduleUpfeat(previous[1])
            warped = warp_features(second, flow * _WARP_SCALE[self.level])
            volume = F.leaky_relu(correlation(first, warped), 0.1)
            feat = torch.cat([volume, first, flow, upfeat], 1)
        for name in ("moduleOne", "moduleTwo", "moduleThr", "moduleFou", "moduleFiv"):
            feat = torch.cat([getattr(self, name)(feat), feat], 1)
        return self.moduleSix(feat), feat


class Refiner(nn.Module):
    """Dilated context network adding a residual to the level-2 flow."""

    def __init__(self) -> None:
        super().__init__()
        cin = _decoder_in(2) + sum(_DENSE)
        layers: list[nn.Module] = []
        for cout, dil in ((128, 1), (128, 2), (128, 4), (96, 8), (64, 16), (32, 1)):
            layers += [_conv(cin, cout, dilation=dil), _lrelu()]
            cin = cout
        layers.append(_conv(cin, 2))
        self.moduleMain = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moduleMain(x)


class PWCNet(nn.Module):
    """Optical flow first -> second. `features` + `flow_from_features` let callers extract each
    frame's pyramid once and reuse it for every flow that frame takes part in."""

    def __init__(self) -> None:
        super().__init__()
        self.moduleExtractor = Extractor()
        self.moduleTwo = Decoder(2)
        self.moduleThr = Decoder(3)
        self.moduleFou = Decoder(4)
        self.moduleFiv = Decoder(5)
        self.moduleSix = Decoder(6)
        self.moduleRefiner = Refiner()

    @staticmethod
    def work_size(h: int, w: int) -> tuple[int, int]:
        """The size the flow is estimated at: each side rounded up to a multiple of 64."""
        return int(math.ceil(h / 64.0) * 64), int(math.ceil(w / 64.0) * 64)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Pyramid of `img` (N, 3, H, W), resized (bilinear) to `work_size` first."""
        h, w = img.shape[2:]
        size = self.work_size(h, w)
        if size != (h, w):
            img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
        return self.moduleExtractor(img)

    def flow_from_features(
        self, first: list[torch.Tensor], second: list[torch.Tensor], size: tuple[int, int]
    ) -> torch.Tensor:
        """Flow (N, 2, H, W) at `size` = (H, W) of the original images, in float32 pixels."""
        estimate = None
        for level in (6, 5, 4, 3, 2):
            decoder = getattr(self, _LEVEL_NAMES[level])
            estimate = decoder(first[level - 1], second[level - 1], estimate)
        flow, feat = estimate
        flow = (flow + self.moduleRefiner(feat)).float()
        h, w = size
        wh, ww = self.work_size(h, w)
        flow = FLOW_SCALE * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([float(w) / float(ww), float(h) / float(wh)], device=flow.device)
        return flow * scale.view(1, 2, 1, 1)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        size = (first.shape[2], first.shape[3])
        return self.flow_from_features(self.features(first), self.features(second), size)
