"""StyleGAN noise for GFPGAN: fixed per render by default, upstream's fresh noise as an option.

GFPGANv1Clean's decoder adds `weight * noise` after every StyleConv (15 layers at 512²: one 4²,
then two per resolution 8² .. 512²). `GFPGANer.enhance` calls the net without `randomize_noise`, so
each call draws fresh N(0, 1) noise (gfpgan/utils.py L125; stylegan2_clean_arch.py L130-133): two
runs never agree and consecutive frames get different noise, which shows as flicker.

Modes (`NoiseSpec.mode`):
- "seeded" (default): one N(0, 1) tensor per layer, drawn from a CPU `torch.Generator` seeded with
  `seed` in layer order, shaped like the checkpoint's `noises.noise<i>` buffers (1, 1, r, r) and
  broadcast over the batch. The same seed gives the same noise for every frame, segment, run and
  device (drawn on CPU, then moved).
- "stored": the checkpoint's own `noises.noise<i>` buffers (`randomize_noise=False`; what the
  conformance vectors use).
- "random": upstream's behaviour, fresh noise per face per call.

`NoisyRestorer` wraps an upstream GFPGANv1Clean without changing it: for "seeded" it adds the
`noise=` list to the decoder call through a forward pre-hook registered for the duration of one
forward. It has GFPGANer's call signature, so it can stand in for `GFPGANer.gfpgan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lihq.errors import InvalidInput

NOISE_MODES = ("seeded", "stored", "random")


@dataclass(frozen=True)
class NoiseSpec:
    mode: str = "seeded"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in NOISE_MODES:
            raise InvalidInput(f"noise mode {self.mode!r}: expected one of {', '.join(NOISE_MODES)}")
        if not -(2**63) <= int(self.seed) < 2**63:
            raise InvalidInput(f"noise seed {self.seed}: must fit in a signed 64-bit integer")

    @property
    def deterministic(self) -> bool:
        return self.mode != "random"


def noise_buffers(net: nn.Module) -> list[torch.Tensor]:
    """The decoder's stored noise buffers, in layer order (noise0, noise1, ...)."""
    decoder = net.stylegan_decoder
    return [getattr(decoder.noises, f"noise{i}") for i in range(decoder.num_layers)]


def seeded_noise(net: nn.Module, seed: int, device: torch.device) -> list[torch.Tensor]:
    """float32 N(0, 1) tensors shaped like the stored buffers, from a CPU generator seeded `seed`."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    shapes = [tuple(b.shape) for b in noise_buffers(net)]
    return [torch.randn(s, generator=gen, dtype=torch.float32).to(device) for s in shapes]


class NoisyRestorer(nn.Module):
    """GFPGANv1Clean under a NoiseSpec. forward(x, return_rgb=False, **ignored) -> (image, rgbs).

    x: (B, 3, 512, 512) float RGB in [-1, 1]; image: (B, 3, 512, 512) in about [-1, 1] (unclamped).
    Extra keyword arguments (GFPGANer passes `weight=0.5`) are ignored, as the clean arch does.
    """

    def __init__(self, net: nn.Module, spec: NoiseSpec, device: torch.device) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self._noise = seeded_noise(net, spec.seed, device) if spec.mode == "seeded" else None

    def forward(self, x: torch.Tensor, return_rgb: bool = False, **_: Any) -> Any:
        if self.spec.mode == "random":
            return self.net(x, return_rgb=return_rgb, randomize_noise=True)
        if self.spec.mode == "stored":
            return self.net(x, return_rgb=return_rgb, randomize_noise=False)
        noise = self._noise

        def inject(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            return args, {**kwargs, "noise": noise}

        handle = self.net.stylegan_decoder.register_forward_pre_hook(inject, with_kwargs=True)
        try:
            return self.net(x, return_rgb=return_rgb, randomize_noise=False)
        finally:
            handle.remove()
