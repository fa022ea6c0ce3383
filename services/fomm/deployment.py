"""Ray Serve deployment of MotionService (app "fomm"): the servicer behind Serve's gRPC proxy.

`build_app(args)` is the application builder named in Serve configs
(`import_path: services.fomm.deployment:build_app`). Weights come from `LIHQ_WEIGHTS_DIR` through the
registry (`lihq weights fetch fomm`), or from explicit files in `args.checkpoints`; store settings
from the replica's environment (`LIHQ_*`), as the media app.

Example `args:` ({} is valid: auto device, batch 25, fp32):

    device: cuda            # auto | cpu | cuda | cuda:N
    batch_size: 32
    precision: bf16         # fp32 | fp16 | bf16 (autocast; keypoint globals stay fp32)
    channels_last: true
    checkpoints: {vox: /models/vox-cpk.pth.tar}
    preload: [vox]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from lihq import log as lihq_log
from lihq.appargs import checked_args
from lihq.config import WeightsConfig
from lihq.errors import LihqError
from lihq.log import stage_logger
from lihq.storage import open_app_store
from services.fomm.runner import CHECKPOINTS, FommRunner, FommRunnerConfig
from services.fomm.servicer import MotionServicer


@dataclass(frozen=True)
class FommAppArgs:
    """Typed app arguments (Serve config `args:`)."""

    device: str = "auto"
    batch_size: int = 25  # divides the default 50-frame segments: no edge padding
    precision: str = "fp32"
    channels_last: bool = False
    align_corners: bool = False  # True: the torch-1.0 grid_sample the checkpoints were trained with
    aligned_batches: bool = True
    max_frames: int = 2000
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    checkpoints: dict[str, str] = field(default_factory=dict)  # {"vox": path, "vox-adv": path}
    preload: tuple[str, ...] = ()  # checkpoint names loaded at start (else on first use)
    bucket: str | None = None
    prefix: str | None = None

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> FommAppArgs:
        args = checked_args("fomm", cls, args)
        if "preload" in args:
            args["preload"] = tuple(args["preload"] or ())
        bad = sorted((set(args.get("checkpoints") or {}) | set(args.get("preload", ()))) - set(CHECKPOINTS))
        if bad:
            raise ValueError(f"fomm app: unknown checkpoint names {bad}; known: {sorted(CHECKPOINTS)}")
        out = cls(**args)
        out.runner_config()  # validates precision / batch size now, not at the first request
        return out

    def runner_config(self) -> FommRunnerConfig:
        return FommRunnerConfig(
            device=self.device,
            batch_size=self.batch_size,
            precision=self.precision,
            channels_last=self.channels_last,
            align_corners=self.align_corners,
            aligned_batches=self.aligned_batches,
            max_frames=self.max_frames,
        )


@serve.deployment(
    name="MotionService",
    ray_actor_options={"num_cpus": 1, "num_gpus": 0.25},
    max_ongoing_requests=4,
    max_queued_requests=64,
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 2},
)
class MotionDeployment(MotionServicer):
    def __init__(self, args: FommAppArgs) -> None:
        lihq_log.configure()
        store = open_app_store(args.bucket, args.prefix)
        weights = WeightsConfig(dir=Path(args.weights_dir)) if args.weights_dir else WeightsConfig.from_env()
        runner = FommRunner(args.runner_config(), weights, args.checkpoints)
        super().__init__(store, runner)
        self._preload = args.preload
        log = stage_logger("fomm")
        for name in args.preload:
            try:
                self._model_id(name, log)
            except LihqError as exc:  # keep running: requests answer FAILED_PRECONDITION with the fix
                log.error("cannot preload FOMM checkpoint %r: %s", name, exc.message)

    def healthy(self) -> bool:
        """NOT_SERVING while a preloaded checkpoint's file is missing (cheap: no loading here)."""
        try:
            for name in self._preload:
                self.runner.checkpoint_path(name)
        except LihqError:
            return False
        return True


def build_app(args: dict[str, Any] | None = None) -> Application:
    return MotionDeployment.bind(FommAppArgs.parse(args))
