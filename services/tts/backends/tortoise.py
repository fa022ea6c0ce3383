"""The `tortoise` backend: TorToiSe through the `tortoise-tts` package (neonbjb/tortoise-tts, Apache-2.0).

Upstream: PyPI tortoise-tts 3.0.0 (github.com/neonbjb/tortoise-tts, `tortoise/api.py`); paper
"Better speech synthesis through scaling" (Betker, 2023). The package's own classes and its
`TextToSpeech.tts_with_preset` / `tts` / `get_conditioning_latents` do all the inference
(autoregressive sampling -> CLVP ranking -> diffusion -> UnivNet vocoder). This adapter only replaces
`TextToSpeech.__init__`, which would (a) pick CUDA by itself, (b) build only the full-size networks,
(c) load the autoregressive model non-strictly and (d) build the redaction aligner, a wav2vec2
download with hard-coded CUDA. Here the networks are built from `TortoiseArch` (full size by
default, tiny in tests), loaded strictly (weights-only) from files found by the package's
`get_model_path` in a Hugging Face cache layout (repo `Manmay/tortoise-tts`) with hub access off,
and kept on our device. Redaction and the `api_fast` HiFi-GAN path (hard-coded CUDA) are never used.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lihq.errors import FailedPrecondition, InvalidInput, WeightsMissing
from lihq.media import decode_audio
from lihq.torchutil import resolve_device
from lihq.weights.loaders import read_checkpoint
from services.tts.backends import tortoise_checkpoint as tl
from services.tts.backends.base import (
    Availability,
    ChunkPolicy,
    SpeechBackend,
    SpeechOptions,
    VoiceInfo,
    combined_weights_id,
    neural_section,
    quiet_stdout,
)

PRESETS = ("ultra_fast", "fast", "standard", "high_quality")
DEFAULT_PRESET = "fast"
RANDOM = "random"
CLIPS_PREFIX = "clips:"
_NOT_INSTALLED = "the tortoise-tts package is not installed: pip install -e '.[tts]'"
LATENT_SEED = 0  # fixes the random crop `format_conditioning` takes of clips over ~6 s


@dataclass(frozen=True)
class TortoiseSettings:
    """Runtime settings. `batch_size` 0: the package's choice from free GPU memory (1 on CPU)."""

    arch: tl.TortoiseArch = field(default_factory=tl.TortoiseArch)
    batch_size: int = 0
    half: bool = False
    kv_cache: bool = True
    max_mel_tokens: int = 500  # each token is 1/20 s (the package's default cap)
    models_dir: Path | None = None  # an HF cache dir with models--Manmay--tortoise-tts; None: a view


def builtin_voice_dir() -> Path | None:
    """The package's `voices/` folder, found without importing the package (that takes seconds)."""
    spec = find_spec("tortoise")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "voices"
    return d if d.is_dir() else None


def builtin_voices() -> dict[str, list[Path]]:
    """Built-in voice -> its files (wav/mp3 clips, or one .pth of precomputed latents)."""
    root = builtin_voice_dir()
    if root is None:
        return {}
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in (".wav", ".mp3", ".pth"))
        if files:
            out[d.name] = files
    return out


def latents_to_bytes(latents: tuple[torch.Tensor, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(tuple(t.detach().cpu().float() for t in latents), buf)
    return buf.getvalue()


def latents_from_bytes(data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(torch.is_tensor(t) for t in obj)):
        raise InvalidInput("voice latents: expected a pair of tensors (auto, diffusion)")
    return obj[0], obj[1]


class TortoiseBackend(SpeechBackend):
    name = "tortoise"
    chunking = ChunkPolicy(target_chars=200, max_chars=300)  # as tortoise's read.py splits text
    presets = PRESETS
    clones_voices = True
    clip_rate = 22050

    def __init__(
        self,
        weights_dir: Path,
        view_dir: Path,
        device: str = "auto",
        settings: TortoiseSettings | None = None,
    ) -> None:
        self.weights_dir = Path(weights_dir)
        self.view_dir = Path(view_dir)
        self.device_name = device
        self.settings = settings or TortoiseSettings()
        self._tts: Any = None
        self._model_id: str | None = None
        self._latents: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- files ----------------------------------------------------------------------------------
    def _where(self) -> Path:
        return self.settings.models_dir or self.weights_dir / "tortoise"

    def models_dir(self) -> Path:
        if self.settings.models_dir is not None:
            return self.settings.models_dir
        return tl.hf_view(self.weights_dir / "tortoise", self.view_dir)

    def availability(self) -> Availability:
        if find_spec("tortoise") is None:
            return Availability(False, _NOT_INSTALLED)
        try:
            tl.model_files(self.models_dir(), tl.CORE_FILES, self._where())
        except WeightsMissing as exc:
            return Availability(False, exc.message)
        return Availability(True)

    def model_id(self) -> str:
        if self._model_id is None:
            if find_spec("tortoise") is None:
                raise FailedPrecondition(_NOT_INSTALLED)
            files = tl.model_files(self.models_dir(), tl.CORE_FILES, self._where())
            files += tl.present_files(self.models_dir(), tl.RLG_FILES)
            self._model_id = combined_weights_id(files)
        return self._model_id

    # -- voices ---------------------------------------------------------------------------------
    def voices(self) -> list[VoiceInfo]:
        out = [VoiceInfo(RANDOM, self.name, "en", "a random voice drawn from the seed (rlg_* weights)")]
        for vid, files in builtin_voices().items():
            kind = "precomputed latents" if files[0].suffix == ".pth" else f"{len(files)} clips"
            out.append(VoiceInfo(vid, self.name, "en", f"built-in voice ({kind}); blend two with a&b"))
        return out

    def resolve(
        self, voice: str, language: str, preset: str, seed: int, rate_wpm: int, pitch: int | None
    ) -> SpeechOptions:
        self.check_espeak_only(rate_wpm, pitch)
        preset = self.check_preset(preset, DEFAULT_PRESET)
        if language and language.lower().split("-")[0] != "en":
            raise InvalidInput(
                f"tortoise speaks English only; got language {language!r} (try bark or espeak)"
            )
        return SpeechOptions(self.name, self._canonical_voice(voice), "en", preset, int(seed))

    def _canonical_voice(self, voice: str) -> str:
        voice = voice.strip() or RANDOM
        if voice.startswith(CLIPS_PREFIX):
            raise InvalidInput(f"voice {voice!r} is an uploaded voice: send its reference clips instead")
        if voice == RANDOM:
            return voice
        names = [v.strip() for v in voice.split("&")]
        known = builtin_voices()
        if len(names) > 2 or not all(names):
            raise InvalidInput(f"voice {voice!r}: give one voice or a blend of two, like 'tom&emma'")
        for n in names:
            if n not in known:
                raise InvalidInput(
                    f"unknown tortoise voice {n!r}; built-in: {', '.join(known)}; or 'random', "
                    "or upload 3-5 reference clips"
                )
        if len(names) == 2 and names[0] == names[1]:
            return names[0]
        return "&".join(sorted(names))

    # -- inference ------------------------------------------------------------------------------
    def warm(self) -> None:
        self.model_id()
        with neural_section():
            self._load()

    def _load(self) -> Any:
        if self._tts is None:
            device = resolve_device(self.device_name)
            self._tts = tl.build_text_to_speech(self.models_dir(), self.settings, device)
        return self._tts

    def voice_from_clips(self, clips: list[np.ndarray]) -> bytes:
        with neural_section():
            return latents_to_bytes(self._clip_latents([torch.from_numpy(c).float()[None] for c in clips]))

    def _clip_latents(self, clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The package's get_conditioning_latents on (1, n) 22.05 kHz clips; caller holds the lock."""
        tts = self._load()
        random.seed(LATENT_SEED)
        with torch.no_grad(), quiet_stdout():
            auto, diffusion = tts.get_conditioning_latents(clips)
        return auto.cpu(), diffusion.cpu()

    def _builtin_latents(self, voice: str) -> tuple[torch.Tensor, torch.Tensor]:
        if voice not in self._latents:
            parts = [self._one_builtin(n) for n in voice.split("&")]
            if len(parts) == 1:
                self._latents[voice] = parts[0]
            else:  # a blend: the mean of the voices' latents, as the package's load_voices does
                self._latents[voice] = (
                    torch.stack([p[0] for p in parts]).mean(0),
                    torch.stack([p[1] for p in parts]).mean(0),
                )
        return self._latents[voice]

    def _one_builtin(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        files = builtin_voices()[name]
        if len(files) == 1 and files[0].suffix == ".pth":
            obj = read_checkpoint(files[0])
            return obj[0].float(), obj[1].float()
        clips = [torch.from_numpy(decode_audio(f, self.clip_rate))[None] for f in files]
        return self._clip_latents(clips)

    def render(self, text: str, opts: SpeechOptions, voice_latents: bytes | None = None) -> np.ndarray:
        with neural_section():
            tts = self._load()
            if voice_latents is not None:
                latents = latents_from_bytes(voice_latents)
            elif opts.voice.startswith(CLIPS_PREFIX):
                raise InvalidInput(f"voice {opts.voice!r}: its reference clips are needed to speak with it")
            elif opts.voice == RANDOM:
                tl.require_rlg(tts)
                latents = None
            else:
                latents = self._builtin_latents(opts.voice)
            with torch.no_grad(), quiet_stdout():
                wav = tts.tts_with_preset(
                    text,
                    preset=opts.preset,
                    conditioning_latents=latents,
                    use_deterministic_seed=int(opts.seed),
                    verbose=False,
                    k=1,
                    max_mel_tokens=self.settings.max_mel_tokens,
                )
        return np.clip(wav.reshape(-1).float().cpu().numpy(), -1.0, 1.0).astype(np.float32)
