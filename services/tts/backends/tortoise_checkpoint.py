"""Finding and loading TorToiSe's weights for the `tortoise` backend (see tortoise.py).

Files live where `lihq weights fetch tortoise` puts them (`$LIHQ_WEIGHTS_DIR/tortoise/<name>`). The
package looks models up with `huggingface_hub.hf_hub_download(repo_id="Manmay/tortoise-tts",
cache_dir=models_dir)`; `hf_view` lays out a Hugging Face cache (`models--Manmay--tortoise-tts/
{refs/main, snapshots/<rev>/<name>}`) of symlinks to those files, so that lookup resolves offline.
Network shapes are the package's `TextToSpeech.__init__` arguments (`TortoiseArch()`); state dicts
load strictly, weights-only, after one filter drops the GPT-2 attention-mask buffers that old
`transformers` versions saved with the autoregressive model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lihq.errors import WeightsMissing
from lihq.weights.load import load_weights

if TYPE_CHECKING:
    from services.tts.backends.tortoise import TortoiseSettings

HF_REPO = "Manmay/tortoise-tts"
CORE_FILES = ("autoregressive.pth", "diffusion_decoder.pth", "clvp2.pth", "vocoder.pth")
RLG_FILES = ("rlg_auto.pth", "rlg_diffuser.pth")
VIEW_REVISION = hashlib.sha1(b"lihq weights view").hexdigest()  # any 40-hex name for the snapshot
_GPT_MASKS = re.compile(r"^gpt\.h\.\d+\.attn\.(bias|masked_bias)$")
_FETCH = "run `lihq weights fetch tortoise`"


@dataclass(frozen=True)
class TortoiseArch:
    """Sizes of the networks. Defaults: the official ones (tortoise/api.py TextToSpeech.__init__)."""

    ar_layers: int = 30
    ar_dim: int = 1024
    ar_heads: int = 16
    diffusion_channels: int = 1024
    diffusion_layers: int = 10
    diffusion_heads: int = 16
    clvp_dim: int = 768
    clvp_depth: int = 20
    clvp_heads: int = 12
    vocoder_channels: int = 32
    vocoder_noise_dim: int = 64


def hub_offline() -> None:
    """Hub access off for this process: lookups resolve from the local cache or fail, never download."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    with contextlib.suppress(ImportError):
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = True


def _link(src: Path, link: Path) -> None:
    target = str(src.resolve())
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = link.with_name(f"{link.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def hf_view(src_dir: Path, root: Path) -> Path:
    """A Hugging Face cache at `root` whose repo Manmay/tortoise-tts is the files of `src_dir`."""
    repo = root / f"models--{HF_REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / VIEW_REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in CORE_FILES + RLG_FILES:
        src, link = src_dir / name, snapshot / name
        if src.is_file():
            _link(src, link)
        elif link.is_symlink() or link.exists():
            link.unlink()
    (repo / "refs").mkdir(exist_ok=True)
    ref = repo / "refs" / "main"
    if not ref.is_file() or ref.read_text() != VIEW_REVISION:
        tmp = ref.with_name(f"main.tmp{os.getpid()}")
        tmp.write_text(VIEW_REVISION)
        os.replace(tmp, ref)
    return root


def cached_file(models_dir: Path, name: str) -> Path | None:
    """Where the HF cache at `models_dir` holds `name` of the repo (what an offline lookup returns)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(HF_REPO, name, cache_dir=str(models_dir))
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def model_files(models_dir: Path, names: tuple[str, ...], where: Path | None = None) -> list[Path]:
    """The files `names` of the repo in the HF cache at `models_dir`; WeightsMissing naming `where`."""
    out = []
    for name in names:
        path = cached_file(models_dir, name)
        if path is None:
            raise WeightsMissing(
                f"weights 'tortoise' missing: {name} (expected in {where or models_dir}); {_FETCH}",
                weight="tortoise",
            )
        out.append(path)
    return out


def present_files(models_dir: Path, names: tuple[str, ...]) -> list[Path]:
    return [p for p in (cached_file(models_dir, n) for n in names) if p is not None]


def package_path(models_dir: Path, name: str) -> Path:
    """The file through the package's own lookup (hf_hub_download, offline)."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    from tortoise.api import get_model_path

    hub_offline()
    try:
        return Path(get_model_path(name, str(models_dir)))
    except (LocalEntryNotFoundError, FileNotFoundError) as exc:
        raise WeightsMissing(
            f"weights 'tortoise' missing: {name} (in {models_dir}); {_FETCH}", weight="tortoise"
        ) from exc


def load_into(module: torch.nn.Module, path: Path, what: str, key: str | None = None) -> None:
    """Strict, weights-only load with shape checks; the GPT-2 mask buffers are the only keys dropped."""
    load_weights(module, path, key=key, filter_fn=checkpoint_filter_fn, what=f"tortoise {what} ({path.name})")


def checkpoint_filter_fn(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the GPT-2 attention-mask buffers old `transformers` versions saved with the model."""
    return {k: v for k, v in sd.items() if not _GPT_MASKS.match(k)}


def _networks(arch: TortoiseArch) -> dict[str, torch.nn.Module]:
    from tortoise.models.autoregressive import UnifiedVoice
    from tortoise.models.clvp import CLVP
    from tortoise.models.diffusion_decoder import DiffusionTts
    from tortoise.models.vocoder import UnivNetGenerator

    a = arch
    with warnings.catch_warnings():  # the package's vocoder uses the deprecated weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        vocoder = UnivNetGenerator(noise_dim=a.vocoder_noise_dim, channel_size=a.vocoder_channels)
    return {
        "autoregressive": UnifiedVoice(
            max_mel_tokens=604, max_text_tokens=402, max_conditioning_inputs=2, layers=a.ar_layers,
            model_dim=a.ar_dim, heads=a.ar_heads, number_text_tokens=255, start_text_token=255,
            checkpointing=False, train_solo_embeddings=False,
        ),
        "diffusion": DiffusionTts(
            model_channels=a.diffusion_channels, num_layers=a.diffusion_layers, in_channels=100,
            out_channels=200, in_latent_channels=a.ar_dim, in_tokens=8193, dropout=0, use_fp16=False,
            num_heads=a.diffusion_heads, layer_drop=0, unconditioned_percentage=0,
        ),
        "clvp": CLVP(
            dim_text=a.clvp_dim, dim_speech=a.clvp_dim, dim_latent=a.clvp_dim, num_text_tokens=256,
            text_enc_depth=a.clvp_depth, text_seq_len=350, text_heads=a.clvp_heads, num_speech_tokens=8192,
            speech_enc_depth=a.clvp_depth, speech_heads=a.clvp_heads, speech_seq_len=430, use_xformers=True,
        ),
        "vocoder": vocoder,
    }  # fmt: skip


def _rlgs(models_dir: Path, arch: TortoiseArch) -> tuple[Any, Any]:
    """The random-latent generators, or (None, None) when their files are absent."""
    from tortoise.models.random_latent_generator import RandomLatentConverter

    if len(present_files(models_dir, RLG_FILES)) < len(RLG_FILES):
        return None, None
    auto, diffusion = RandomLatentConverter(arch.ar_dim), RandomLatentConverter(2 * arch.diffusion_channels)
    load_into(auto, package_path(models_dir, "rlg_auto.pth"), "random latent generator (autoregressive)")
    load_into(diffusion, package_path(models_dir, "rlg_diffuser.pth"), "random latent generator (diffusion)")
    return auto.eval(), diffusion.eval()


def build_text_to_speech(models_dir: Path, settings: TortoiseSettings, device: torch.device) -> Any:
    """A `tortoise.api.TextToSpeech` whose networks come from `models_dir`, resident on `device`."""
    hub_offline()
    from tortoise import api
    from tortoise.utils.tokenizer import VoiceBpeTokenizer

    nets = _networks(settings.arch)
    files = {
        "autoregressive": "autoregressive.pth",
        "diffusion": "diffusion_decoder.pth",
        "clvp": "clvp2.pth",
    }
    for key, name in files.items():
        load_into(nets[key], package_path(models_dir, name), key)
    load_into(nets["vocoder"], package_path(models_dir, "vocoder.pth"), "vocoder", key="model_g")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nets["vocoder"].eval(inference=True)  # removes weight norm, as the package does
    nets["autoregressive"].post_init_gpt2_config(
        use_deepspeed=False, kv_cache=settings.kv_cache, half=settings.half
    )
    tts = object.__new__(api.TextToSpeech)
    tts.models_dir = str(models_dir)
    tts.autoregressive_batch_size = settings.batch_size or api.pick_best_batch_size_for_gpu()
    tts.enable_redaction = False
    tts.device = device
    tts.half = settings.half
    tts.tokenizer = VoiceBpeTokenizer()
    for key, net in nets.items():  # (the vocoder is in eval mode already; its eval() returns None)
        net.to(device)
        setattr(tts, key, net if key == "vocoder" else net.eval())
    tts.cvvp = None
    tts.rlg_auto, tts.rlg_diffusion = _rlgs(models_dir, settings.arch)
    tts.temporary_cuda = _resident(device)
    return tts


def _resident(device: torch.device) -> Any:
    """Replaces TextToSpeech.temporary_cuda, which moves each model back to the CPU after every use."""

    @contextlib.contextmanager
    def use(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        yield model.to(device)

    return use


def require_rlg(tts: Any) -> None:
    if getattr(tts, "rlg_auto", None) is None:
        raise WeightsMissing(
            f"voice 'random' needs rlg_auto.pth and rlg_diffuser.pth; {_FETCH}", weight="tortoise"
        )
