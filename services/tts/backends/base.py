"""The speech backend interface: what espeak, tortoise and bark each implement.

A backend turns one chunk of text into float32 mono audio at `SAMPLE_RATE` (24 kHz) in [-1, 1]; the
runner splits long text, trims, joins and normalises. Backends never import ray, grpc or protos.
Constructing a backend is cheap (no weights are read): weights load on the first `render`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy.signal import resample_poly

from lihq.errors import InvalidInput
from lihq.weights.synth import weights_id

SAMPLE_RATE = 24000  # every backend's output rate (TorToiSe's and Bark's native rate)


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    backend: str
    language: str
    description: str


@dataclass(frozen=True)
class SpeechOptions:
    """How to speak, resolved and validated by the backend: identical for every chunk of a request.

    `voice` is the backend's canonical voice id ("clips:<sha256>" for an uploaded voice); `rate_wpm`
    and `pitch` are espeak's (0 / None = its defaults); `seed` drives every random draw.
    """

    backend: str
    voice: str
    language: str
    preset: str = ""
    seed: int = 0
    rate_wpm: int = 0
    pitch: int | None = None

    def as_params(self) -> dict[str, object]:
        """The fields that determine the audio, for content-addressed keys and manifests."""
        return {
            "backend": self.backend,
            "voice": self.voice,
            "language": self.language,
            "preset": self.preset,
            "seed": int(self.seed),
            "rate_wpm": int(self.rate_wpm),
            "pitch": -1 if self.pitch is None else int(self.pitch),
        }


@dataclass(frozen=True)
class ChunkPolicy:
    """How long text is cut for this backend: chunks of about `target_chars`, never over `max_chars`."""

    target_chars: int
    max_chars: int


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""  # why not, with the command that fixes it


class SpeechBackend(ABC):
    """One TTS engine. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    chunking: ClassVar[ChunkPolicy]
    presets: ClassVar[tuple[str, ...]] = ()
    clones_voices: ClassVar[bool] = False
    clip_rate: ClassVar[int] = 22050  # the rate reference clips are decoded at for `voice_from_clips`

    @abstractmethod
    def availability(self) -> Availability:
        """Whether `render` can run here (weights / binary present). Cheap: reads no weights."""

    @abstractmethod
    def model_id(self) -> str:
        """The id in content-addressed keys: `espeak-ng:<version>`, `sha256:<hex>`, `synthetic:<seed>`.

        Raises WeightsMissing when the weights are absent.
        """

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """Every voice this backend offers (needs no weights)."""

    @abstractmethod
    def resolve(
        self, voice: str, language: str, preset: str, seed: int, rate_wpm: int, pitch: int | None
    ) -> SpeechOptions:
        """Check and canonicalise a request's options; InvalidInput naming what is wrong and what works."""

    @abstractmethod
    def render(self, text: str, opts: SpeechOptions, voice_latents: bytes | None = None) -> np.ndarray:
        """Speak one chunk: float32 (n,) at SAMPLE_RATE in [-1, 1]. Deterministic for (text, opts)."""

    def warm(self) -> None:
        """Load what the first render would (weights, voice tables), so that it starts fast."""
        self.model_id()

    def voice_from_clips(self, clips: list[np.ndarray]) -> bytes:
        """Serialised voice conditioning from reference clips (float32 mono at `clip_rate`)."""
        raise InvalidInput(
            f"the {self.name} backend cannot clone a voice from reference clips; use tortoise, "
            f"or pick one of its voices (ListVoices / `lihq tts --list-voices --backend {self.name}`)"
        )

    def check_espeak_only(self, rate_wpm: int, pitch: int | None) -> None:
        if rate_wpm or pitch is not None:
            raise InvalidInput(
                f"rate and pitch apply to the espeak backend only, not {self.name}; leave them unset"
            )

    def check_preset(self, preset: str, default: str = "") -> str:
        if not self.presets:
            if preset:
                raise InvalidInput(f"the {self.name} backend has no presets; got preset {preset!r}")
            return ""
        preset = preset or default
        if preset not in self.presets:
            raise InvalidInput(
                f"unknown {self.name} preset {preset!r}; expected one of {', '.join(self.presets)}"
            )
        return preset


def to_sample_rate(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of mono float audio to `target` Hz (deterministic), as float32 in [-1, 1]."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if rate != target and x.size:
        g = math.gcd(int(rate), int(target))
        x = resample_poly(x, target // g, rate // g).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


_NEURAL = threading.RLock()


@contextlib.contextmanager
def neural_section() -> Iterator[None]:
    """One neural render at a time per process: the packages seed torch's global RNG and move their
    models between devices, so two interleaved renders would not be reproducible."""
    with _NEURAL:
        yield


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The packages print progress and hints; keep them out of the service's stdout."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def combined_weights_id(files: list[Path]) -> str:
    """One model id over several files: `synthetic:<seed>` if all share it, else sha256 of their ids."""
    ids = [weights_id(Path(p).resolve()) for p in files]
    if len(set(ids)) == 1 and ids[0].startswith("synthetic:"):
        return ids[0]
    text = "\n".join(f"{Path(p).name}={i}" for p, i in zip(files, ids, strict=True))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
