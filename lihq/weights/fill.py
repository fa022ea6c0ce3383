"""LIHQ's own deterministic fill rule for synthetic weights ("lihq-fill/1").

Every tensor depends only on (seed, key, shape, dtype): a `torch.Generator` is seeded from the seed
and the CRC-32 of the key (`stream_seed`), and the tensor is drawn from it by the first matching rule
below. Nothing depends on key order, so one key can be refilled alone. Keys are the module's own
state-dict keys (no nn.DataParallel `module.` prefix).

Rules (first match wins; `fan_in` = prod(shape[1:]), PyTorch's convention, except StyleGAN2's
modulated weights `[1, out, in, k, k]`, whose fan-in is in·k·k):

1. integer tensors (BatchNorm `num_batches_tracked`)      -> zeros
2. `running_mean`                                        -> N(0, 0.05²)
3. `running_var`                                         -> exp(N(0, 0.2²))  (positive, around 1)
4. `down.weight` of shape [C, 1, k, k], k odd (FOMM's AntiAliasInterpolation2d buffer) -> the
   normalised Gaussian that module computes itself: sigma = (k - 1) / 8 (its kernel size is
   2·round(4·sigma) + 1), centre (k - 1) / 2, the same for every channel; no randomness
5. `jacobian.bias`, 1-D, length a multiple of 4 (FOMM KPDetector) -> identity [1, 0, 0, 1] per
   keypoint + N(0, 0.02²), so every predicted 2x2 Jacobian is well conditioned
6. `jacobian.weight`                                     -> N(0, (0.05 / sqrt(fan_in))²)
6b. StyleGAN2 noise buffers (`noises.noise<i>`, GFPGAN)   -> N(0, 1), as the noise they stand for
7. any other tensor of 2+ dims (conv / linear weights)   -> N(0, (GAIN / sqrt(fan_in))²) clipped at
   ±2.5 std. GAIN = 1.0 (LeCun scale) keeps the deep residual nets in range: Wav2Lip's sigmoid output
   is neither all 0 nor all 1, FOMM's keypoints spread over the frame (tests/lihq/test_synthetic_nets.py).
8. 1-D `weight` (norm gammas, scales)                    -> 1 + N(0, 0.1²)
9. `bias`                                                -> N(0, 0.02²)
10. anything else                                        -> N(0, 0.1²)

Float tensors are float32 (then cast to the module's dtype by the caller). The values are
reproducible wherever torch's CPU generator gives the same stream for a seed; the sidecar of every
synthetic file records `RULE` and the file's sha256, so a changed stream is noticed.
A new rule must get a new `RULE` name (and so new weights ids, see synth.weights_id).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import torch

RULE = "lihq-fill/1"
GAIN = 1.0
_CLIP = 2.5
_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant (golden ratio) to spread seeds
_MASK63 = (1 << 63) - 1

# (key, shape, seed) -> float tensor; the rule above, or a vector set's own fill (lihq verify)
FillFn = Callable[[str, Sequence[int], int], torch.Tensor]


def stream_seed(seed: int, key: str) -> int:
    """The generator seed of one key: the run seed and CRC-32 of the key, mixed into 63 bits."""
    crc = zlib.crc32(key.encode("utf-8"))
    return ((int(seed) * _MIX) ^ (crc << 17) ^ crc) & _MASK63


def _gen(seed: int, key: str) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(stream_seed(seed, key))


def _normal(
    seed: int, key: str, shape: tuple[int, ...], std: float, clip: float | None = None
) -> torch.Tensor:
    x = torch.randn(shape, generator=_gen(seed, key), dtype=torch.float32)
    if clip is not None:
        x = x.clamp_(-clip, clip)
    return x.mul_(std)


def _fan_in(shape: tuple[int, ...]) -> int:
    if len(shape) == 5 and shape[0] == 1:  # StyleGAN2 modulated conv weight [1, out, in, k, k]
        return max(1, math.prod(shape[2:]))
    return max(1, math.prod(shape[1:]))


def gaussian_kernel(channels: int, k: int) -> torch.Tensor:
    """[channels, 1, k, k] normalised 2-D Gaussian of AntiAliasInterpolation2d (sigma = (k-1)/8)."""
    sigma = (k - 1) / 8.0
    r = torch.arange(k, dtype=torch.float64) - (k - 1) / 2.0
    g1 = torch.exp(-(r**2) / (2 * sigma**2))
    g = torch.outer(g1, g1)
    g = g / g.sum()
    return g.to(torch.float32).expand(channels, 1, k, k).clone()


def fill_tensor(key: str, shape: Sequence[int], seed: int) -> torch.Tensor:
    """One float32 tensor of `shape` for `key` (rules 2-10; rule 1 is `fill_like`'s)."""
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if key.endswith("running_mean"):
        return _normal(seed, key, shape, 0.05)
    if key.endswith("running_var"):
        return _normal(seed, key, shape, 0.2).exp_()
    if key.endswith("down.weight") and nd == 4 and shape[1] == 1 and shape[2] == shape[3] and shape[2] % 2:
        return gaussian_kernel(shape[0], shape[2])
    if key.endswith("jacobian.bias") and nd == 1 and shape[0] % 4 == 0:
        eye = torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(shape[0] // 4)
        return eye + _normal(seed, key, shape, 0.02)
    if key.endswith("jacobian.weight") and nd >= 2:
        return _normal(seed, key, shape, 0.05 / math.sqrt(_fan_in(shape)))
    if ".noises.noise" in key or key.startswith("noises.noise"):
        return _normal(seed, key, shape, 1.0)
    if nd >= 2:
        return _normal(seed, key, shape, GAIN / math.sqrt(_fan_in(shape)), _CLIP)
    if nd == 1 and key.endswith("weight"):
        return _normal(seed, key, shape, 0.1).add_(1.0)
    if key.endswith("bias"):
        return _normal(seed, key, shape, 0.02)
    return _normal(seed, key, shape, 0.1)


def fill_like(key: str, like: torch.Tensor, seed: int, fill: FillFn = fill_tensor) -> torch.Tensor:
    """A filled tensor with `like`'s shape and dtype: integer tensors are zeros (rule 1)."""
    if not (like.is_floating_point() or like.is_complex()):
        return torch.zeros(like.shape, dtype=like.dtype)
    out = fill(key, list(like.shape), seed)
    if tuple(out.shape) != tuple(like.shape):
        raise ValueError(f"fill gave {list(out.shape)} for {key} {list(like.shape)}")
    return out.to(like.dtype)


def fill_state_dict(
    sd: dict[str, torch.Tensor], seed: int, fill: FillFn = fill_tensor
) -> dict[str, torch.Tensor]:
    """{key: filled tensor} over a module's state dict (keys, shapes and dtypes taken from it)."""
    return {k: fill_like(k, v, seed, fill) for k, v in sd.items()}


def fill_module(module: torch.nn.Module, seed: int, fill: FillFn = fill_tensor) -> torch.nn.Module:
    """Load the filled state dict into `module` (strict) and return it; for tests and tiny nets."""
    module.load_state_dict(fill_state_dict(module.state_dict(), seed, fill), strict=True)
    return module
