"""QVI: quadratic flow prediction, flow reversal, UNet refinement, adaptive filtering and blending.

Upstream: xuxy09/QVI @ 64bf82f3, models/QVI.py + models/acceleration.py (Xu et al., "Quadratic Video
Interpolation", NeurIPS 2019; no license file). Own code. Attribute names equal the keys of
`model.pt['model_state_dict']` without nn.DataParallel's `module.` prefix.

Frames are mean-subtracted RGB (N, 3, H, W) float32 (RGB in [0, 1] minus `MEAN`), H, W >= 32; the
output frame is in the same space. Interpolating between I1 and I2 at t in (0, 1) uses the flows
F1->0, F1->2, F2->1, F2->3 (quadratic motion); without I0 or I3 (clip ends) the motion is linear.
Flows do not depend on t: estimate them once (`estimate_flows`) and `synthesize` every t from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from services.qvi.nets.pwcnet import PWCNet
from services.qvi.nets.unet import UNet2
from services.qvi.nets.warp import backwarp, reverse_flow

MEAN = (0.429, 0.431, 0.397)  # RGB mean subtracted from [0, 1] frames (std 1), configs/test_config.py
Trace = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Flows:
    """Flows of one pair (I1, I2) and its neighbours, (N, 2, H, W) float32 pixels.

    f10: I1 -> I0 (None at a clip start), f12: I1 -> I2, f21: I2 -> I1, f23: I2 -> I3 (None at a clip end).
    """

    f10: torch.Tensor | None
    f12: torch.Tensor
    f21: torch.Tensor
    f23: torch.Tensor | None

    @property
    def quadratic(self) -> bool:
        return self.f10 is not None and self.f23 is not None


class SmallMaskNet(nn.Module):
    """Three convs predicting the blending mask logit (1 channel)."""

    def __init__(self, cin: int = 38, cout: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), 0.1)
        x = F.leaky_relu(self.conv2(x), 0.1)
        return self.conv3(x)


def _coef(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float64 per-sample coefficient, rounded once to float32 as a Python scalar would be."""
    return value.to(device=like.device, dtype=torch.float32)


def as_time(t: float | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """t as a float64 (N, 1, 1, 1) tensor (a scalar is broadcast to every sample)."""
    tt = torch.as_tensor(t, dtype=torch.float64, device=device)
    return tt.reshape(-1, 1, 1, 1).expand(n, 1, 1, 1) if tt.numel() == 1 else tt.reshape(n, 1, 1, 1)


def quadratic_flows(flows: Flows, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F1->t, F2->t) for t (N, 1, 1, 1) float64: quadratic motion when both neighbours exist,
    else linear (t * F12, (1 - t) * F21). Coefficients are formed in float64, then rounded to float32."""
    f12, f21 = flows.f12, flows.f21
    s = 1 - t
    if flows.quadratic:
        f1t = 0.5 * (_coef(t + t**2, f12) * f12 - _coef(t - t**2, f12) * flows.f10)
        f2t = 0.5 * (_coef(s + s**2, f21) * f21 - _coef(s - s**2, f21) * flows.f23)
        return f1t, f2t
    return _coef(t, f12) * f12, _coef(s, f21) * f21


class QVI(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flownet = PWCNet()
        self.refinenet = UNet2(20, 8)
        self.masknet = SmallMaskNet(38, 1)

    def estimate_flows(
        self, i0: torch.Tensor | None, i1: torch.Tensor, i2: torch.Tensor, i3: torch.Tensor | None
    ) -> Flows:
        """The four flows of a pair; each frame's feature pyramid is computed once."""
        frames = [f for f in (i0, i1, i2, i3) if f is not None]
        n = i1.shape[0]
        pyramid = self.flownet.features(torch.cat(frames, 0))
        names = [k for k, f in zip(("i0", "i1", "i2", "i3"), (i0, i1, i2, i3), strict=True) if f is not None]
        feats = {k: [p[j * n : (j + 1) * n] for p in pyramid] for j, k in enumerate(names)}
        pairs = [("i1", "i0"), ("i1", "i2"), ("i2", "i1"), ("i2", "i3")]
        pairs = [p for p in pairs if p[0] in feats and p[1] in feats]
        first = [torch.cat([feats[a][lvl] for a, _ in pairs], 0) for lvl in range(6)]
        second = [torch.cat([feats[b][lvl] for _, b in pairs], 0) for lvl in range(6)]
        flow = self.flownet.flow_from_features(first, second, (i1.shape[2], i1.shape[3]))
        out = {p: flow[j * n : (j + 1) * n] for j, p in enumerate(pairs)}
        return Flows(out.get(("i1", "i0")), out[("i1", "i2")], out[("i2", "i1")], out.get(("i2", "i3")))

    def synthesize(
        self,
        i1: torch.Tensor,
        i2: torch.Tensor,
        flows: Flows,
        t: float | torch.Tensor,
        trace: Trace | None = None,
    ) -> torch.Tensor:
        """The frame at time t between i1 and i2 (all (N, ...) with the same N; t scalar or (N,)).

        `trace`, when given, receives the intermediates (named as in the reference vectors).
        """
        tt = as_time(t, i1.shape[0], i1.device)
        f1t, f2t = quadratic_flows(flows, tt)
        with torch.autocast(i1.device.type, enabled=False):  # splatting and sampling stay in float32
            ft1, norm1 = reverse_flow(f1t)
            ft2, norm2 = reverse_flow(f2t)
            i1t, i2t = backwarp(i1.float(), ft1), backwarp(i2.float(), ft2)
        unet_in = torch.cat([i1, i2, i1t, i2t, flows.f12, flows.f21, ft1, ft2], 1)
        out, feature = self.refinenet(unet_in)
        out = out.float()
        with torch.autocast(i1.device.type, enabled=False):
            ft1r = backwarp(ft1, 10 * torch.tanh(out[:, 4:6])) + out[:, :2]
            ft2r = backwarp(ft2, 10 * torch.tanh(out[:, 6:8])) + out[:, 2:4]
            i1tf, i2tf = backwarp(i1.float(), ft1r), backwarp(i2.float(), ft2r)
        mask = torch.sigmoid(self.masknet(torch.cat([i1tf, i2tf, feature], 1)).float())
        a, b = _coef(1 - tt, mask), _coef(tt, mask)
        frame = (a * mask * i1tf + b * (1 - mask) * i2tf) / (a * mask + b * (1 - mask))
        if trace is not None:
            named = {
                "F10": flows.f10, "F12": flows.f12, "F21": flows.f21, "F23": flows.f23,
                "F1t": f1t, "F2t": f2t, "norm1": norm1, "norm2": norm2, "Ft1": ft1, "Ft2": ft2,
                "I1t": i1t, "I2t": i2t, "unet_out": out, "Ft1r": ft1r, "Ft2r": ft2r,
                "I1tf": i1tf, "I2tf": i2tf, "M": mask,
            }  # fmt: skip
            trace.update({k: v for k, v in named.items() if v is not None})
        return frame

    def forward(
        self,
        i0: torch.Tensor | None,
        i1: torch.Tensor,
        i2: torch.Tensor,
        i3: torch.Tensor | None,
        t: float | torch.Tensor,
    ) -> torch.Tensor:
        """Upstream's call: QVI(I0, I1, I2, I3, t) -> It; I0 / I3 None for linear motion."""
        return self.synthesize(i1, i2, self.estimate_flows(i0, i1, i2, i3), t)
