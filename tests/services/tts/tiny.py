"""Tiny, randomly initialised TorToiSe and Bark checkpoints in the official file layouts.

The networks are the packages' own classes at tiny sizes; the files are written as upstream ships
them (TorToiSe: plain state dicts, the autoregressive one with the GPT-2 mask buffers old
`transformers` saved, the vocoder under 'model_g'; Bark: {'model', 'model_args', 'best_val_loss' (a
numpy scalar pickled under numpy 1's module name), 'iter_num'} with torch.compile's '_orig_mod.'
prefix; EnCodec: a plain state dict; a BERT vocab.txt), so the services' real loaders read them.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch

from services.tts.backends.tortoise_checkpoint import TortoiseArch

TINY_TORTOISE = TortoiseArch(
    ar_layers=1,
    ar_dim=32,
    ar_heads=2,
    diffusion_channels=32,
    diffusion_layers=1,
    diffusion_heads=2,
    clvp_dim=32,
    clvp_depth=1,
    clvp_heads=2,
    vocoder_channels=8,
    vocoder_noise_dim=8,
)


def _save(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def write_tiny_tortoise(weights_dir: Path, seed: int = 0, arch: TortoiseArch = TINY_TORTOISE) -> Path:
    """Files at `weights_dir/tortoise/*.pth`, as `lihq weights fetch tortoise` lays them out."""
    from tortoise.models.random_latent_generator import RandomLatentConverter

    from services.tts.backends.tortoise_checkpoint import _networks

    torch.manual_seed(seed)
    nets = _networks(arch)
    d = weights_dir / "tortoise"
    ar = dict(nets["autoregressive"].state_dict())
    for i in range(arch.ar_layers):  # what transformers < 4.31 saved as persistent buffers
        ar[f"gpt.h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 8, 8, dtype=torch.bool))
        ar[f"gpt.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    _save(ar, d / "autoregressive.pth")
    _save(nets["diffusion"].state_dict(), d / "diffusion_decoder.pth")
    _save(nets["clvp"].state_dict(), d / "clvp2.pth")
    _save({"model_g": nets["vocoder"].state_dict()}, d / "vocoder.pth")
    _save(RandomLatentConverter(arch.ar_dim).state_dict(), d / "rlg_auto.pth")
    _save(RandomLatentConverter(2 * arch.diffusion_channels).state_dict(), d / "rlg_diffuser.pth")
    return d


def _bert_vocab() -> list[str]:
    chars = string.ascii_letters + string.digits + ".,!?'-:;\"()"
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]


def _legacy_numpy_save(obj: dict, path: Path) -> Path:
    """torch.save in the legacy format with numpy scalars named as numpy 1 pickled them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp, _use_new_zipfile_serialization=False)
    data = tmp.read_bytes().replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    path.write_bytes(data)
    tmp.unlink()
    return path


def _bark_gpt(kind: str, seed: int) -> tuple[torch.nn.Module, dict]:
    from bark.model import GPT, GPTConfig
    from bark.model_fine import FineGPT, FineGPTConfig

    torch.manual_seed(seed)
    base = {"block_size": 1024, "n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.0, "bias": False}
    if kind == "fine":
        args = {
            **base,
            "input_vocab_size": 1056,
            "output_vocab_size": 1056,
            "n_codes_total": 8,
            "n_codes_given": 1,
        }
        return FineGPT(FineGPTConfig(**args)), args
    vocab = {"text": (129_600, 10_048), "coarse": (20_000, 20_000)}[kind]
    args = {**base, "input_vocab_size": vocab[0], "output_vocab_size": vocab[1]}
    return GPT(GPTConfig(**args)), args


def write_tiny_bark(weights_dir: Path, seed: int = 0) -> Path:
    """Files at `weights_dir/bark/`: text_2.pt, coarse_2.pt, fine_2.pt, EnCodec, BERT vocab."""
    from encodec import EncodecModel

    d = weights_dir / "bark"
    for i, (kind, name) in enumerate(
        (("text", "text_2.pt"), ("coarse", "coarse_2.pt"), ("fine", "fine_2.pt"))
    ):
        model, args = _bark_gpt(kind, seed + i)
        sd = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
        ckpt = {"model": sd, "model_args": args, "best_val_loss": np.float64(1.25), "iter_num": 1000}
        _legacy_numpy_save(ckpt, d / name)
    torch.manual_seed(seed + 10)
    codec = EncodecModel.encodec_model_24khz(pretrained=False)
    sd = codec.state_dict()
    for k in sd:
        if k.endswith("_codebook.embed"):
            sd[k] = torch.randn_like(sd[k])
    _save(sd, d / "encodec_24khz-d7cc33bc.th")
    vocab = d / "bert-base-multilingual-cased" / "vocab.txt"
    vocab.parent.mkdir(parents=True, exist_ok=True)
    vocab.write_text("\n".join(_bert_vocab()) + "\n")
    return d
