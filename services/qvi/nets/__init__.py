"""QVI (Quadratic Video Interpolation, Xu et al., NeurIPS 2019) as pure PyTorch modules.

Upstream: https://github.com/xuxy09/QVI @ 64bf82f3ed471992fb20c3bdae33c9e9e5de52f6 (no license file;
research code). PWC-Net as vendored there (after sniklaus/pytorch-pwc, GPL-3.0). Only the architecture
facts (layer shapes, checkpoint key names, constants) are taken from upstream; the code is our own.
"""

from services.qvi.nets.correlation import correlation
from services.qvi.nets.pwcnet import PWCNet
from services.qvi.nets.qvi import QVI, Flows, quadratic_flows
from services.qvi.nets.unet import UNet2
from services.qvi.nets.warp import backwarp, forward_splat, reverse_flow

__all__ = [
    "QVI",
    "Flows",
    "PWCNet",
    "UNet2",
    "backwarp",
    "correlation",
    "forward_splat",
    "quadratic_flows",
    "reverse_flow",
]
