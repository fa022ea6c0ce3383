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
from typing import Any, ClassVar

from ray import serve
from ray.serve import Application

from lihq.appargs import AppArgs, StageDeployment, deployment_options
from lihq.config import WeightsConfig
from lihq.errors import LihqError
from lihq.log import stage_logger
from services.fomm.runner import CHECKPOINTS, FommRunner, FommRunnerConfig
from services.fomm.servicer import MotionServicer


@dataclass(frozen=True)
class FommAppArgs(AppArgs):
    """Typed app arguments (Serve config `args:`): the runner's settings (FommRunnerConfig: device,
    batch_size, precision, channels_last, align_corners, …) + where the weights are + preloading."""

    app: ClassVar[str] = "fomm"
    runner: FommRunnerConfig = field(default_factory=FommRunnerConfig)
    weights_dir: str | None = None  # default: LIHQ_WEIGHTS_DIR
    checkpoints: dict[str, str] = field(default_factory=dict)  # {"vox": path, "vox-adv": path}
    preload: tuple[str, ...] = ()  # checkpoint names loaded at start (else on first use)

    def check(self) -> None:
        bad = sorted((set(self.checkpoints) | set(self.preload)) - set(CHECKPOINTS))
        if bad:
            raise ValueError(f"fomm app: unknown checkpoint names {bad}; known: {sorted(CHECKPOINTS)}")

    def servicer_args(self) -> tuple[Any, ...]:
        weights = WeightsConfig(dir=Path(self.weights_dir)) if self.weights_dir else WeightsConfig.from_env()
        return self.store(), FommRunner(self.runner, weights, self.checkpoints)


@serve.deployment(**deployment_options("MotionService"))
class MotionDeployment(StageDeployment, MotionServicer):
    def __init__(self, args: FommAppArgs) -> None:
        super().__init__(args)
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
