"""TtsRunner: text -> 24 kHz speech on local arrays and files, with no store, gRPC or Ray.

It owns the backends (weights load once, on first use), checks requests, cuts long text into the
chunks its backend speaks best (`chunking`), renders chunks (`render_chunk`: independent and
deterministic, so a service can cache them and spread them over replicas), and joins them with
pauses, optional leading silence and loudness normalisation (`assemble`). `synthesize` does all of
it in-process, with a thread pool across chunks (what `lihq tts` uses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lihq import media
from lihq.config import WeightsConfig, lihq_home
from lihq.errors import InvalidInput
from services.tts import audio
from services.tts.backends import (
    BACKENDS,
    NEURAL_PREFERENCE,
    SAMPLE_RATE,
    SpeechBackend,
    SpeechOptions,
    VoiceInfo,
)
from services.tts.backends.bark import BarkSettings
from services.tts.backends.tortoise import CLIPS_PREFIX, TortoiseSettings
from services.tts.text_split import Pauses, TextChunk, chunk_text, normalize_text, speakable

MANIFEST_SCHEMA = 1


@dataclass(frozen=True)
class ClipLimits:
    """Reference clips of an uploaded voice: how many, how long, how loud (3-5 of ~10 s is best)."""

    min_clips: int = 2
    max_clips: int = 10
    min_s: float = 2.0
    max_s: float = 60.0
    silence_db: float = -50.0  # a clip whose voiced level is below this is silent


@dataclass(frozen=True)
class TtsRunnerConfig:
    weights_dir: Path | None = None  # None: LIHQ_WEIGHTS_DIR (read when the runner is made)
    cache_dir: Path | None = (
        None  # local scratch for tortoise's Hugging Face cache view; None: LIHQ_HOME/cache/tts
    )
    device: str = "auto"
    max_text_chars: int = 5000  # about five minutes of speech
    max_leading_silence_s: float = 2.0
    clips: ClipLimits = field(default_factory=ClipLimits)
    pauses: Pauses = field(default_factory=Pauses)
    espeak_binary: str = "espeak-ng"
    tortoise: TortoiseSettings = field(default_factory=TortoiseSettings)
    bark: BarkSettings = field(default_factory=BarkSettings)

    @classmethod
    def from_env(cls, **overrides: Any) -> TtsRunnerConfig:
        """Weights from LIHQ_WEIGHTS_DIR, scratch under LIHQ_HOME/cache/tts (both via lihq.config)."""
        return cls(**overrides).resolved()

    def resolved(self) -> TtsRunnerConfig:
        """This config with unset directories taken from the environment (via lihq.config)."""
        return replace(
            self,
            weights_dir=self.weights_dir or WeightsConfig.from_env().dir,
            cache_dir=self.cache_dir or lihq_home() / "cache" / "tts",
        )


@dataclass(frozen=True)
class SpeechPlan:
    """A checked request: resolved options, the chunks to render, the model id, and why this backend."""

    options: SpeechOptions
    chunks: tuple[TextChunk, ...]
    model_id: str
    note: str = ""


@dataclass(frozen=True)
class SpeechResult:
    audio: np.ndarray  # float32 (n,) at SAMPLE_RATE in [-1, 1]
    plan: SpeechPlan
    placements: tuple[audio.Placement, ...]  # where each chunk's speech sits in `audio`
    leading_silence_s: float = 0.0
    normalized: bool = False

    @property
    def duration_s(self) -> float:
        return self.audio.size / SAMPLE_RATE

    def manifest(self, chunk_keys: Sequence[Mapping[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        """The JSON manifest: what was spoken, how, with which model, and where each chunk lands."""
        o = self.plan.options
        chunks = []
        for i, (c, p) in enumerate(zip(self.plan.chunks, self.placements, strict=True)):
            row = {"index": c.index, "text": c.text, "offset_s": round(p.offset_s, 6)}
            row |= {"duration_s": round(p.duration_s, 6), "pause_after_s": c.pause_after_s}
            chunks.append(row | dict(chunk_keys[i] if chunk_keys else {}))
        return {
            "schema": MANIFEST_SCHEMA,
            **o.as_params(),
            "model_id": self.plan.model_id,
            "note": self.plan.note,
            "sample_rate": SAMPLE_RATE,
            "duration_s": round(self.duration_s, 6),
            "leading_silence_s": self.leading_silence_s,
            "normalize_loudness": self.normalized,
            "chunks": chunks,
            **extra,
        }


def clip_set_id(digests: Sequence[str]) -> str:
    """The voice id of an uploaded voice: `clips:<sha256 over the clips' sha256s, in order>`."""
    return CLIPS_PREFIX + hashlib.sha256("\n".join(digests).encode()).hexdigest()


class TtsRunner:
    def __init__(self, cfg: TtsRunnerConfig, backends: Mapping[str, SpeechBackend] | None = None) -> None:
        self.cfg = cfg.resolved()
        self._backends: dict[str, SpeechBackend] = dict(backends or {})

    # -- backends ---------------------------------------------------------------------------------
    def backend(self, name: str) -> SpeechBackend:
        if name not in BACKENDS:
            raise InvalidInput(f"unknown TTS backend {name!r}; expected one of {', '.join(BACKENDS)}")
        if name not in self._backends:
            self._backends[name] = self._make(name)
        return self._backends[name]

    def _make(self, name: str) -> SpeechBackend:
        c = self.cfg
        if name == "espeak":
            from services.tts.backends.espeak import EspeakBackend

            return EspeakBackend(c.espeak_binary)
        if name == "tortoise":
            from services.tts.backends.tortoise import TortoiseBackend

            return TortoiseBackend(c.weights_dir, c.cache_dir / "tortoise-hf", c.device, c.tortoise)
        from services.tts.backends.bark import BarkBackend

        return BarkBackend(c.weights_dir, c.device, c.bark)

    def default_backend(self) -> tuple[str, str]:
        """(name, note): the first neural backend that can run, else espeak, saying why."""
        for name in NEURAL_PREFERENCE:
            if self.backend(name).availability().available:
                return name, ""
        return "espeak", (
            "no neural TTS weights present, so espeak-ng speaks (robotic but offline); for natural "
            "voices run `lihq weights fetch tortoise` (or `lihq weights fetch bark`)"
        )

    def backend_names(self, backend: str = "") -> list[str]:
        """[backend] after checking the name, or every backend when empty."""
        return [self.backend(backend).name] if backend else list(BACKENDS)

    def list_voices(self, backend: str = "", language: str = "") -> list[VoiceInfo]:
        names = self.backend_names(backend)
        out = [v for n in names for v in self.backend(n).voices()]
        lang = language.strip().lower()
        return [
            v for v in out if not lang or not v.language or v.language.split("-")[0] == lang.split("-")[0]
        ]

    # -- requests ---------------------------------------------------------------------------------
    def check_text(self, text: str) -> str:
        text = normalize_text(text or "")
        if not text:
            raise InvalidInput("text is empty: give something to say")
        if len(text) > self.cfg.max_text_chars:
            raise InvalidInput(
                f"text has {len(text)} characters; the limit is {self.cfg.max_text_chars} "
                "(split it into several requests)"
            )
        if not speakable(text):
            raise InvalidInput("text has nothing to speak (only punctuation or symbols)")
        return text

    def check_leading_silence(self, seconds: float) -> float:
        if not 0.0 <= seconds <= self.cfg.max_leading_silence_s:
            raise InvalidInput(
                f"leading_silence_s={seconds}: expected 0-{self.cfg.max_leading_silence_s} s (LIHQ uses 0.3-0.5)"
            )
        return float(seconds)

    def resolve(
        self,
        backend: str = "",
        voice: str = "",
        language: str = "",
        preset: str = "",
        seed: int = 0,
        rate_wpm: int = 0,
        pitch: int | None = None,
        clip_digests: Sequence[str] = (),
    ) -> tuple[SpeechBackend, SpeechOptions, str, str]:
        """(backend, options, model id, note) for a request; InvalidInput / WeightsMissing when it cannot run."""
        note = ""
        if not backend and clip_digests:
            backend = "tortoise"  # the backend that clones voices
        elif not backend:
            backend, note = self.default_backend()
        be = self.backend(backend)
        if clip_digests:
            self.check_clip_count(len(clip_digests))
            if voice:
                raise InvalidInput("give either a voice or reference clips, not both")
            if not be.clones_voices:
                be.voice_from_clips([])  # raises: this backend cannot clone
        opts = be.resolve(voice, language, preset, int(seed), int(rate_wpm), pitch)
        if clip_digests:
            opts = replace(opts, voice=clip_set_id(clip_digests))
        return be, opts, be.model_id(), note

    def plan(self, text: str, **options: Any) -> SpeechPlan:
        """Check the text and options (see `resolve`) and cut the text into chunks for the backend."""
        text = self.check_text(text)
        be, opts, model_id, note = self.resolve(**options)
        chunks = tuple(chunk_text(text, be.chunking, self.cfg.pauses))
        return SpeechPlan(opts, chunks, model_id, note)

    def check_chunk(self, text: str, backend: SpeechBackend) -> str:
        """One chunk (SynthesizeChunk): non-empty, speakable, within the backend's chunk size."""
        text = self.check_text(text)
        if len(text) > backend.chunking.max_chars:
            raise InvalidInput(
                f"a chunk for {backend.name} may hold {backend.chunking.max_chars} characters, this one "
                f"has {len(text)}; use Synthesize, which splits long text"
            )
        return text

    # -- reference clips --------------------------------------------------------------------------
    def check_clip_count(self, n: int) -> None:
        lim = self.cfg.clips
        if not lim.min_clips <= n <= lim.max_clips:
            raise InvalidInput(
                f"{n} reference clip(s): an uploaded voice needs {lim.min_clips}-{lim.max_clips} clips "
                "(3-5 clips of about 10 s of one speaker work best)"
            )

    def load_clips(self, paths: Sequence[Path], backend: SpeechBackend) -> list[np.ndarray]:
        """Decode and check reference clips: mono float32 at the backend's clip rate."""
        self.check_clip_count(len(paths))
        return [self._load_clip(i, Path(p), backend.clip_rate) for i, p in enumerate(paths, 1)]

    def _load_clip(self, i: int, path: Path, rate: int) -> np.ndarray:
        lim = self.cfg.clips
        try:
            info = media.probe(path, require_audio=True)
        except InvalidInput as exc:
            raise InvalidInput(f"reference clip {i} is not usable audio: {exc.message}") from exc
        if not lim.min_s <= info.duration <= lim.max_s:
            raise InvalidInput(
                f"reference clip {i} lasts {info.duration:.2f} s; clips must last {lim.min_s:g}-{lim.max_s:g} s "
                "(about 10 s is best)"
            )
        samples = media.decode_audio(path, rate)
        if audio.voiced_rms_db(samples, rate) < lim.silence_db:
            raise InvalidInput(f"reference clip {i} is silent (below {lim.silence_db:g} dBFS); upload speech")
        return samples

    # -- rendering --------------------------------------------------------------------------------
    def render_chunk(self, opts: SpeechOptions, text: str, voice_latents: bytes | None = None) -> np.ndarray:
        """One chunk, trimmed of silence at both ends (kept whole if trimming would leave nothing)."""
        raw = self.backend(opts.backend).render(text, opts, voice_latents)
        trimmed = audio.trim_silence(raw, SAMPLE_RATE)
        return trimmed if trimmed.size else raw

    def assemble(
        self,
        plan: SpeechPlan,
        chunk_audio: Sequence[np.ndarray],
        leading_silence_s: float = 0.0,
        normalize: bool = False,
    ) -> SpeechResult:
        """Join the chunks in order with their pauses; leading silence; loudness normalisation."""
        lead = self.check_leading_silence(leading_silence_s)
        joined, places = audio.join(list(chunk_audio), [c.pause_after_s for c in plan.chunks], SAMPLE_RATE)
        if normalize:
            joined = audio.normalize_loudness(joined, SAMPLE_RATE)
        out = audio.lead_with_silence(joined, SAMPLE_RATE, lead)
        places = tuple(audio.Placement(p.offset_s + lead, p.duration_s) for p in places)
        return SpeechResult(out, plan, places, lead, bool(normalize))

    def synthesize(
        self,
        text: str,
        *,
        clip_paths: Sequence[Path] = (),
        leading_silence_s: float = 0.0,
        normalize: bool = False,
        workers: int = 2,
        **options: Any,
    ) -> SpeechResult:
        """Everything in-process: plan, (clone), render chunks on `workers` threads, assemble."""
        self.check_leading_silence(leading_silence_s)
        digests = [media_sha256(Path(p)) for p in clip_paths]
        plan = self.plan(text, clip_digests=digests, **options)
        latents = None
        if clip_paths:
            be = self.backend(plan.options.backend)
            latents = be.voice_from_clips(self.load_clips(list(clip_paths), be))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            parts = list(pool.map(lambda c: self.render_chunk(plan.options, c.text, latents), plan.chunks))
        return self.assemble(plan, parts, leading_silence_s, normalize)


def media_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
