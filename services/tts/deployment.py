"""Ray Serve deployments of SpeechService (app "tts"): a light ingress and a pool of chunk workers.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.tts.deployment:build_app`). The ingress (`SpeechService`, CPU only) answers
the gRPC methods: it plans each request and fans its chunks out to `SpeechWorker` replicas through a
deployment handle, so the chunks of one long text are spoken in parallel; then it joins them. The
workers hold the models (GPU fraction 0.25: TorToiSe fp32 needs ~6 GB, Bark ~12 GB) and autoscale.
Keeping the two apart means a request waiting for its chunks never blocks the replicas that render
them. Store settings and the weights dir come from the environment (`LIHQ_*`, see lihq.config).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from lihq import log as lihq_log
from lihq.appargs import AppArgs, deployment_options
from lihq.errors import LihqError
from lihq.torchutil import resolve_device
from services.tts.chunk_render import ChunkDone, ChunkJob, ChunkRenderer
from services.tts.runner import TtsRunner, TtsRunnerConfig
from services.tts.servicer import SpeechServicer

PRELOADABLE = ("espeak", "tortoise", "bark")


@dataclass(frozen=True)
class TtsAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`), shared by the ingress and the workers: the
    runner's settings (TtsRunnerConfig: device, weights_dir, max_text_chars, …; its TorToiSe and
    Bark settings as `tortoise_<field>` / `bark_<field>`) + a workdir + the backends to preload."""

    app: ClassVar[str] = "tts"
    nested: ClassVar[tuple[str, ...]] = ("tortoise", "bark", "clips", "pauses")
    runner: TtsRunnerConfig = field(default_factory=TtsRunnerConfig)
    workdir: str | None = None
    preload: tuple[str, ...] = ()  # backends whose weights workers load at start

    def check(self) -> None:
        if not all(v in PRELOADABLE for v in self.preload):
            raise ValueError(f"tts app: preload must list names of {list(PRELOADABLE)}")
        cap = self.runner.bark.max_gen_duration_s
        if cap is not None and cap <= 0:
            raise ValueError("tts app: bark_max_gen_duration_s must be > 0 (leave it out for Bark's own cap)")

    def workdir_path(self) -> Path | None:
        return Path(self.workdir) if self.workdir else None


def _retyped(exc: BaseException) -> BaseException:
    """A typed error raised in a worker arrives wrapped (RayTaskError); give the ingress the original."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, LihqError):
        return type(cause)(cause.message)
    return exc


@serve.deployment(**deployment_options("SpeechWorker", max_ongoing=2, max_queued=256, target_ongoing=1))
class SpeechWorker:
    """Renders one chunk into the store per call; models load once per replica."""

    def __init__(self, args: TtsAppArgs) -> None:
        lihq_log.configure()
        self.runner = TtsRunner(args.runner)
        self.renderer = ChunkRenderer(args.store(), self.runner, args.workdir_path())
        for name in args.preload:
            self.runner.backend(name).warm()

    async def render(self, job: ChunkJob) -> ChunkDone:
        return await asyncio.to_thread(self.renderer.render, job)


@serve.deployment(
    **deployment_options(
        "SpeechService",
        num_cpus=0.25,
        num_gpus=0,
        max_ongoing=16,
        max_queued=128,
        max_replicas=2,
        target_ongoing=8,
    )
)
class SpeechDeployment(SpeechServicer):
    def __init__(self, args: TtsAppArgs, worker: DeploymentHandle) -> None:
        lihq_log.configure()
        self.worker = worker
        runner = TtsRunner(args.runner)
        device = str(resolve_device(args.runner.device))
        super().__init__(args.store(), runner, args.workdir_path(), execute=self._remote, device=device)

    async def _remote(self, job: ChunkJob) -> ChunkDone:
        try:
            return await self.worker.render.remote(job)
        except Exception as exc:
            typed = _retyped(exc)
            if typed is exc:
                raise
            raise typed from None


def build_app(args: dict[str, Any] | None = None) -> Application:
    parsed = TtsAppArgs.parse(args)
    return SpeechDeployment.bind(parsed, SpeechWorker.bind(parsed))
