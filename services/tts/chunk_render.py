"""One chunk of speech as an independent, content-addressed unit of work (no Ray, no gRPC).

A `ChunkJob` carries everything a chunk's audio depends on (text, resolved options, model id,
reference-clip keys and digests), so any replica holding the same weights renders the same samples
into the same key: `cache/tts/<digest>/chunk.wav`. An uploaded voice's conditioning latents are
computed once per (model, clip set) and kept in the store (`cache/tts/<digest>/latents.pt`), so every
replica that renders a chunk of that voice reuses them.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lihq import media
from lihq.cache import cache_key, stage_digest
from lihq.errors import FailedPrecondition, InvalidInput
from lihq.log import stage_logger
from lihq.storage.base import sha256_file
from services.tts.backends import SAMPLE_RATE, SpeechOptions
from services.tts.runner import TtsRunner

STAGE = "tts"


@dataclass(frozen=True)
class ChunkJob:
    text: str
    options: SpeechOptions
    model_id: str
    clips: tuple[tuple[str, str], ...] = ()  # (store key, sha256) of each reference clip, in order
    render_id: str = ""

    def key(self) -> str:
        params = {**self.options.as_params(), "text": self.text}
        digest = stage_digest(f"{STAGE}.chunk", self.model_id, params, [d for _, d in self.clips])
        return cache_key(STAGE, digest, "chunk.wav")

    def latents_key(self) -> str:
        params = {"backend": self.options.backend, "voice": self.options.voice}
        digest = stage_digest(f"{STAGE}.voice", self.model_id, params, [d for _, d in self.clips])
        return cache_key(STAGE, digest, "latents.pt")


@dataclass(frozen=True)
class ChunkDone:
    key: str
    sha256: str
    size: int
    samples: int  # at SAMPLE_RATE
    cache_hit: bool
    wall_s: float


class ChunkRenderer:
    """Renders `ChunkJob`s into the store; shared by the in-process path and the Ray worker."""

    def __init__(self, store: Any, runner: TtsRunner, workdir: Path | None = None) -> None:
        self.store = store
        self.runner = runner
        self.workdir = workdir
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)

    def render(self, job: ChunkJob) -> ChunkDone:
        t0 = time.perf_counter()
        key = job.key()
        if self.store.exists(key):
            info = self.store.stat(key)
            return ChunkDone(
                key, info.sha256 or "", info.size, _samples(info.size), True, time.perf_counter() - t0
            )
        self._check_model(job)
        latents = self.voice_latents(job)
        samples = self.runner.render_chunk(job.options, job.text, latents)
        with tempfile.TemporaryDirectory(prefix="lihq-tts-", dir=self.workdir) as tmp:
            path = media.write_wav(Path(tmp) / "chunk.wav", samples, SAMPLE_RATE)
            info = self.store.put_file(key, path, "audio/wav")
        stage_logger(STAGE, render_id=job.render_id).info(
            "chunk %s: %d chars -> %.2f s", key, len(job.text), samples.size / SAMPLE_RATE
        )
        return ChunkDone(
            key, info.sha256 or "", info.size, int(samples.size), False, time.perf_counter() - t0
        )

    def _check_model(self, job: ChunkJob) -> None:
        here = self.runner.backend(job.options.backend).model_id()
        if here != job.model_id:
            raise FailedPrecondition(
                f"this replica's {job.options.backend} weights are {here}, the request planned with "
                f"{job.model_id}: every replica must hold the same weights"
            )

    def voice_latents(self, job: ChunkJob) -> bytes | None:
        """The uploaded voice's conditioning (from the store, or computed from the clips and stored)."""
        if not job.clips:
            return None
        key = job.latents_key()
        if self.store.exists(key):
            return self.store.get_bytes(key)
        backend = self.runner.backend(job.options.backend)
        with tempfile.TemporaryDirectory(prefix="lihq-tts-clips-", dir=self.workdir) as tmp:
            paths = []
            for i, (clip_key, digest) in enumerate(job.clips):
                dest = Path(tmp) / f"clip{i}"
                self.store.get_file(clip_key, dest)
                if sha256_file(dest) != digest:
                    raise InvalidInput(
                        f"reference clip {i + 1} ({clip_key}) changed: its sha256 is not {digest}"
                    )
                paths.append(dest)
            data = backend.voice_from_clips(self.runner.load_clips(paths, backend))
        self.store.put_bytes(key, data, "application/octet-stream")
        return data


def _samples(size: int) -> int:
    """Samples of one of our float32 mono WAVs from its size (the header is 58 bytes)."""
    return max(0, (size - 58) // 4)
