"""SpeechService logic: objects <-> TtsRunner (docs/architecture.md §3). No Ray here.

`Synthesize` plans (checks, resolves the backend, cuts the text), derives content-addressed keys
(stage, model id, options, text, reference-clip digests), answers a repeated request from the store,
and otherwise renders each chunk as an independent `ChunkJob` through `execute` — in-process threads
by default; the Ray deployment passes a handle to its worker deployment, so chunks of one request
run on several replicas — then joins the chunks and stores the WAV and its JSON manifest.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lihq import media
from lihq.cache import cache_key, stage_digest
from lihq.errors import InvalidInput
from lihq.grpc import refs
from lihq.grpc.errors import rpc_method
from lihq.grpc.health import HealthMixin
from lihq.log import stage_logger
from lihq.v1 import common_pb2, speech_pb2
from services.tts import audio
from services.tts.backends import SAMPLE_RATE
from services.tts.chunk_render import ChunkDone, ChunkJob, ChunkRenderer
from services.tts.runner import SpeechPlan, TtsRunner

STAGE = "tts"
ChunkExecutor = Callable[[ChunkJob], Awaitable[ChunkDone]]


def options_of(o: speech_pb2.SpeechOptions, digests: list[str]) -> dict[str, Any]:
    """TtsRunner.resolve keyword arguments from the proto options."""
    return {
        "backend": o.backend.strip().lower(),
        "voice": o.voice,
        "language": o.language,
        "preset": o.preset.strip().lower(),
        "seed": int(o.seed),
        "rate_wpm": int(o.rate_wpm),
        "pitch": int(o.pitch) if o.HasField("pitch") else None,
        "clip_digests": digests,
    }


def chunk_ref(bucket: str, row: dict[str, Any]) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(bucket=bucket, key=row["wav"], sha256=row["sha256"], size=row["size"])


class SpeechServicer(HealthMixin):
    def __init__(
        self,
        store: Any,
        runner: TtsRunner,
        workdir: Path | None = None,
        execute: ChunkExecutor | None = None,
        max_local_parallel: int = 2,
        device: str = "cpu",
    ) -> None:
        self.store = store
        self.runner = runner
        self.workdir = workdir
        self.chunks = ChunkRenderer(store, runner, workdir)
        self.device = device
        self._execute = execute or self._render_locally
        self._local_slots = asyncio.Semaphore(max(1, max_local_parallel))

    async def _render_locally(self, job: ChunkJob) -> ChunkDone:
        async with self._local_slots:
            return await asyncio.to_thread(self.chunks.render, job)

    def _metrics(self, t0: float, model_id: str, hit: bool, **extra: float) -> common_pb2.StageMetrics:
        return common_pb2.StageMetrics(
            wall_s=time.perf_counter() - t0, cache_hit=hit, model_id=model_id, device=self.device, extra=extra
        )

    def _clips(self, refs_: Any) -> list[tuple[str, str]]:
        out = []
        for i, r in enumerate(refs_, 1):
            key = refs.key_of(self.store, r, f"reference clip {i}")
            out.append((key, refs.object_digest(self.store, r, f"reference clip {i}")))
        return out

    # -- Synthesize -----------------------------------------------------------------------------
    @rpc_method(speech_pb2.SynthesizeResponse)
    async def Synthesize(self, request: speech_pb2.SynthesizeRequest, grpc_context: Any = None):  # noqa: N802
        t0 = time.perf_counter()
        plan, clips, keys = await asyncio.to_thread(self._plan, request)
        log = stage_logger(STAGE, render_id=request.ctx.render_id)
        cached = await asyncio.to_thread(self._cached_manifest, keys)
        if cached is not None:
            return self._response(cached, keys, plan, self._metrics(t0, plan.model_id, True))
        jobs = [
            ChunkJob(c.text, plan.options, plan.model_id, tuple(clips), request.ctx.render_id)
            for c in plan.chunks
        ]
        if clips:  # conditioning once, here, before the chunks fan out (they find it in the store)
            await asyncio.to_thread(self.chunks.voice_latents, jobs[0])
        done = await asyncio.gather(*(self._execute(j) for j in jobs))
        manifest = await asyncio.to_thread(self._assemble, plan, done, request, keys)
        hits = sum(d.cache_hit for d in done)
        log.info(
            "spoke %d chunks (%d cached) with %s: %.2f s of audio",
            len(done),
            hits,
            plan.options.backend,
            manifest["duration_s"],
        )
        wall = time.perf_counter() - t0
        metrics = self._metrics(t0, plan.model_id, False, chunks=len(done), chunk_cache_hits=hits)
        metrics.extra["rtf"] = wall / max(manifest["duration_s"], 1e-6)
        return self._response(manifest, keys, plan, metrics)

    def _plan(
        self, req: speech_pb2.SynthesizeRequest
    ) -> tuple[SpeechPlan, list[tuple[str, str]], dict[str, str]]:
        lead = self.runner.check_leading_silence(req.leading_silence_s)
        clips = self._clips(req.options.reference_clips)
        plan = self.runner.plan(req.text, **options_of(req.options, [d for _, d in clips]))
        params = {
            **plan.options.as_params(),
            "chunks": [[c.text, c.pause_after_s] for c in plan.chunks],
            "leading_silence_s": lead,
            "normalize_loudness": bool(req.normalize_loudness),
        }
        digest = stage_digest(STAGE, plan.model_id, params, [d for _, d in clips])
        keys = {
            "wav": cache_key(STAGE, digest, "speech.wav"),
            "manifest": cache_key(STAGE, digest, "manifest.json"),
        }
        return plan, clips, keys

    def _cached_manifest(self, keys: dict[str, str]) -> dict[str, Any] | None:
        if not (self.store.exists(keys["wav"]) and self.store.exists(keys["manifest"])):
            return None
        return json.loads(self.store.get_bytes(keys["manifest"]))

    def _assemble(
        self, plan: SpeechPlan, done: list[ChunkDone], req: speech_pb2.SynthesizeRequest, keys: dict[str, str]
    ) -> dict[str, Any]:
        parts = []
        for d in done:
            samples, rate = audio.read_wav(self.store.get_bytes(d.key))
            if rate != SAMPLE_RATE:
                raise InvalidInput(f"chunk {d.key} is at {rate} Hz, expected {SAMPLE_RATE}")
            parts.append(samples)
        result = self.runner.assemble(plan, parts, req.leading_silence_s, req.normalize_loudness)
        with tempfile.TemporaryDirectory(prefix="lihq-tts-", dir=self.workdir) as tmp:
            path = Path(tmp) / "speech.wav"
            media.write_wav(path, result.audio, SAMPLE_RATE)
            stored = self.store.put_file(keys["wav"], path, "audio/wav")
        rows = [{"wav": d.key, "sha256": d.sha256, "size": d.size} for d in done]
        manifest = result.manifest(
            rows, wav={"key": stored.key, "sha256": stored.sha256, "size": stored.size}
        )
        blob = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
        self.store.put_bytes(keys["manifest"], blob, "application/json")
        return manifest

    def _response(
        self,
        manifest: dict[str, Any],
        keys: dict[str, str],
        plan: SpeechPlan,
        metrics: common_pb2.StageMetrics,
    ) -> speech_pb2.SynthesizeResponse:
        bucket = self.store.bucket
        w = manifest["wav"]
        chunks = [
            speech_pb2.SpeechChunk(
                index=row["index"],
                text=row["text"],
                offset_s=row["offset_s"],
                duration_s=row["duration_s"],
                pause_after_s=row["pause_after_s"],
                wav=chunk_ref(bucket, row),
            )
            for row in manifest["chunks"]
        ]
        return speech_pb2.SynthesizeResponse(
            wav=common_pb2.ObjectRef(bucket=bucket, key=w["key"], sha256=w["sha256"], size=w["size"]),
            manifest=refs.to_ref(self.store, self.store.stat(keys["manifest"])),
            duration_s=manifest["duration_s"],
            sample_rate=SAMPLE_RATE,
            chunks=chunks,
            metrics=metrics,
            backend=plan.options.backend,
            voice=plan.options.voice,
            language=plan.options.language,
            model_id=plan.model_id,
            note=plan.note,
        )

    # -- SynthesizeChunk ------------------------------------------------------------------------
    @rpc_method(speech_pb2.SynthesizeChunkResponse)
    async def SynthesizeChunk(self, request: speech_pb2.SynthesizeChunkRequest, grpc_context: Any = None):  # noqa: N802
        t0 = time.perf_counter()
        job = await asyncio.to_thread(self._chunk_job, request)
        done = await self._execute(job)
        return speech_pb2.SynthesizeChunkResponse(
            wav=common_pb2.ObjectRef(
                bucket=self.store.bucket, key=done.key, sha256=done.sha256, size=done.size
            ),
            duration_s=done.samples / SAMPLE_RATE,
            metrics=self._metrics(t0, job.model_id, done.cache_hit),
        )

    def _chunk_job(self, req: speech_pb2.SynthesizeChunkRequest) -> ChunkJob:
        clips = self._clips(req.options.reference_clips)
        be, opts, model_id, _ = self.runner.resolve(**options_of(req.options, [d for _, d in clips]))
        text = self.runner.check_chunk(req.text, be)
        return ChunkJob(text, opts, model_id, tuple(clips), req.ctx.render_id)

    # -- ListVoices -----------------------------------------------------------------------------
    @rpc_method(speech_pb2.ListVoicesResponse)
    async def ListVoices(self, request: speech_pb2.ListVoicesRequest, grpc_context: Any = None):  # noqa: N802
        return await asyncio.to_thread(self._list_voices, request)

    def _list_voices(self, req: speech_pb2.ListVoicesRequest) -> speech_pb2.ListVoicesResponse:
        voices = self.runner.list_voices(req.backend.strip().lower(), req.language)
        backends = []
        for name in self.runner.backend_names(req.backend.strip().lower()):
            be = self.runner.backend(name)
            a = be.availability()
            backends.append(
                speech_pb2.Backend(
                    name=name,
                    available=a.available,
                    reason=a.reason,
                    presets=list(be.presets),
                    clones_voices=be.clones_voices,
                )
            )
        return speech_pb2.ListVoicesResponse(
            voices=[
                speech_pb2.Voice(id=v.id, backend=v.backend, language=v.language, description=v.description)
                for v in voices
            ],
            backends=backends,
            default_backend=self.runner.default_backend()[0],
        )
