"""The Wav2Lip generator (96x96 faces), our own code.

Upstream: Rudrabha/Wav2Lip @ 5c90fa9b, `models/wav2lip.py` + `models/conv.py` (architecture and
checkpoint key names only). Paper: K R Prajwal et al., "A Lip Sync Expert Is All You Need for Speech
to Lip Generation In The Wild", ACM Multimedia 2020. Weights license: research / non-commercial
(see the upstream README); this code: the project's license.

Attribute names equal the official checkpoint keys (after nn.DataParallel's `module.` prefix is
removed by the loader): `face_encoder_blocks.{i}.{j}.conv_block.{0: conv, 1: bn}`,
`audio_encoder.{j}...`, `face_decoder_blocks.{i}.{j}...`, `output_block.{0 (conv+bn), 1 (1x1 conv)}`.

Inputs / outputs (`forward(mel, faces)`):
- `mel`   (B, 1, 80, 16) float32: one normalised mel chunk per face (values in [-4, 4]);
- `faces` (B, 6, 96, 96) float32 in [0, 1], **BGR**: channels 0-2 the face with its lower half
  (rows 48..95) zeroed, channels 3-5 the unmasked reference face;
- returns (B, 3, 96, 96) float32 in (0, 1), BGR.
The 5-D sequence form of upstream's training code is not supported (inference never uses it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMG_SIZE = 96
N_MELS = 80
MEL_STEP = 16


class ConvNormAct(nn.Module):
    """conv -> batch norm (-> + input when `residual`) -> ReLU. Keys: conv_block.0 / conv_block.1."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int | tuple[int, int],
        padding: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_block(x)
        if self.residual:
            y = y + x
        return self.act(y)


class UpConvNormAct(nn.Module):
    """transposed conv -> batch norm -> ReLU. Keys: conv_block.0 / conv_block.1."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _stage(
    cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int, n_res: int
) -> list[nn.Module]:
    """A (possibly strided) conv followed by `n_res` 3x3 residual convs at `cout` channels."""
    layers: list[nn.Module] = [ConvNormAct(cin, cout, kernel, stride, padding)]
    layers += [ConvNormAct(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
    return layers


def _up_stage(cin: int, cout: int, stride: int, padding: int, out_pad: int, n_res: int) -> nn.Sequential:
    layers: list[nn.Module] = [UpConvNormAct(cin, cout, 3, stride, padding, out_pad)]
    layers += [ConvNormAct(cout, cout, 3, 1, 1, residual=True) for _ in range(n_res)]
    return nn.Sequential(*layers)


# (cin, cout, kernel, stride, padding, residual convs after it); spatial size in the comment
_FACE_ENCODER: Sequence[tuple[int, int, int, int, int, int]] = (
    (6, 16, 7, 1, 3, 0),  # 96
    (16, 32, 3, 2, 1, 2),  # 48
    (32, 64, 3, 2, 1, 3),  # 24
    (64, 128, 3, 2, 1, 2),  # 12
    (128, 256, 3, 2, 1, 2),  # 6
    (256, 512, 3, 2, 1, 1),  # 3
)
# (cin, cout, stride, residual convs): the mel chunk (80 x 16) is reduced to 1 x 1
_AUDIO_ENCODER: Sequence[tuple[int, int, int | tuple[int, int], int]] = (
    (1, 32, 1, 2),  # 80 x 16
    (32, 64, (3, 1), 2),  # 27 x 16
    (64, 128, 3, 2),  # 9 x 6
    (128, 256, (3, 2), 1),  # 3 x 3
)
# (cin, cout, stride, padding, output_padding, residual convs): each output is concatenated with the
# face-encoder feature map of the same size before the next block
_FACE_DECODER: Sequence[tuple[int, int, int, int, int, int]] = (
    (1024, 512, 1, 0, 0, 1),  # 1 -> 3
    (1024, 512, 2, 1, 1, 2),  # 3 -> 6
    (768, 384, 2, 1, 1, 2),  # 6 -> 12
    (512, 256, 2, 1, 1, 2),  # 12 -> 24
    (320, 128, 2, 1, 1, 2),  # 24 -> 48
    (160, 64, 2, 1, 1, 2),  # 48 -> 96
)


def _face_encoder() -> nn.ModuleList:
    blocks = [nn.Sequential(*_stage(*spec)) for spec in _FACE_ENCODER]
    blocks.append(nn.Sequential(ConvNormAct(512, 512, 3, 1, 0), ConvNormAct(512, 512, 1, 1, 0)))  # 3 -> 1
    return nn.ModuleList(blocks)


def _audio_encoder() -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, stride, n_res in _AUDIO_ENCODER:
        layers += _stage(cin, cout, 3, stride, 1, n_res)
    layers += [ConvNormAct(256, 512, 3, 1, 0), ConvNormAct(512, 512, 1, 1, 0)]  # 3 x 3 -> 1 x 1
    return nn.Sequential(*layers)


def _face_decoder() -> nn.ModuleList:
    blocks = [nn.Sequential(ConvNormAct(512, 512, 1, 1, 0))]
    blocks += [_up_stage(*spec) for spec in _FACE_DECODER]
    return nn.ModuleList(blocks)


class Wav2Lip(nn.Module):
    """Audio-conditioned U-Net: mel chunk + masked/reference face -> the face with a new mouth."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = _face_encoder()
        self.audio_encoder = _audio_encoder()
        self.face_decoder_blocks = _face_decoder()
        self.output_block = nn.Sequential(
            ConvNormAct(80, 32, 3, 1, 1), nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 4 or faces.dim() != 4:
            raise ValueError(
                f"expected mel (B,1,80,16) and faces (B,6,96,96), got {mel.shape}, {faces.shape}"
            )
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mel)  # (B, 512, 1, 1)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)
