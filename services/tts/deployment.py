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
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.errors import LihqError
from lihq.storage import open_app_store
from lihq.torchutil import resolve_device
from services.tts.backends.bark import BarkSettings
from services.tts.backends.tortoise import TortoiseSettings
from services.tts.chunks import ChunkDone, ChunkJob, ChunkRenderer
from services.tts.runner import TtsRunner, TtsRunnerConfig
from services.tts.servicer import SpeechServicer

PRELOADABLE = ("espeak", "tortoise", "bark")


@dataclass(frozen=True)
class TtsAppArgs:
    """Typed app arguments (Serve config `args:`), shared by the ingress and the workers."""

    bucket: str | None = None
    prefix: str | None = None
    workdir: str | None = None
    device: str = "auto"
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    max_text_chars: int = 5000
    tortoise_batch_size: int = 0  # autoregressive samples per batch; 0: from free GPU memory
    tortoise_half: bool = False
    tortoise_kv_cache: bool = True
    bark_max_gen_duration_s: float = 0.0  # 0: Bark's own cap
    preload: tuple[str, ...] = ()  # backends whose weights workers load at start

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> TtsAppArgs:
        args = checked_args("tts", cls, args)
        hints = typing.get_type_hints(cls)
        for name, value in args.items():
            if name == "preload":
                if isinstance(value, str) or not all(v in PRELOADABLE for v in value):
                    raise ValueError(f"tts app: preload must list names of {list(PRELOADABLE)}")
                args[name] = tuple(value)
                continue
            allowed = typing.get_args(hints[name]) or (hints[name],)
            if float in allowed and type(value) is int:
                value = args[name] = float(value)
            if type(value) not in allowed:
                raise ValueError(
                    f"tts app: {name} must be {' or '.join(t.__name__ for t in allowed)}, got {value!r}"
                )
        return cls(**args)

    def runner_config(self) -> TtsRunnerConfig:
        over: dict[str, Any] = {
            "device": self.device,
            "max_text_chars": self.max_text_chars,
            "tortoise": TortoiseSettings(
                batch_size=self.tortoise_batch_size, half=self.tortoise_half, kv_cache=self.tortoise_kv_cache
            ),
            "bark": BarkSettings(max_gen_duration_s=self.bark_max_gen_duration_s or None),
        }
        if self.weights_dir:
            over["weights_dir"] = Path(self.weights_dir)
        return TtsRunnerConfig.from_env(**over)

    def store(self) -> Any:
        return open_app_store(self.bucket, self.prefix)


def _retyped(exc: BaseException) -> BaseException:
    """A typed error raised in a worker arrives wrapped (RayTaskError); give the ingress the original."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, LihqError):
        return type(cause)(cause.message)
    return exc


@serve.deployment(
    name="SpeechWorker",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0.25},
    max_ongoing_requests=2,
    max_queued_requests=256,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 1},
)
class SpeechWorker:
    """Renders one chunk into the store per call; models load once per replica."""

    def __init__(self, args: TtsAppArgs) -> None:
        lihq_log.configure()
        self.runner = TtsRunner(args.runner_config())
        self.renderer = ChunkRenderer(args.store(), self.runner, Path(args.workdir) if args.workdir else None)
        for name in args.preload:
            self.runner.backend(name).warm()

    async def render(self, job: ChunkJob) -> ChunkDone:
        return await asyncio.to_thread(self.renderer.render, job)


@serve.deployment(
    name="SpeechService",
    ray_actor_options={"num_cpus": 0.25, "num_gpus": 0},
    max_ongoing_requests=16,
    max_queued_requests=128,
    autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8},
)
class SpeechDeployment(SpeechServicer):
    def __init__(self, args: TtsAppArgs, worker: DeploymentHandle) -> None:
        lihq_log.configure()
        self.worker = worker
        runner = TtsRunner(args.runner_config())
        device = str(resolve_device(args.device))
        workdir = Path(args.workdir) if args.workdir else None
        super().__init__(args.store(), runner, workdir, execute=self._remote, device=device)

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
