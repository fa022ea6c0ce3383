"""Typed app args of the `fomm` Serve application."""

from __future__ import annotations

import pytest

from services.fomm.deployment import FommAppArgs, MotionDeployment, build_app


def test_defaults_and_runner_config():
    args = FommAppArgs.parse({})
    cfg = args.runner  # the runner's own config: one definition of each default
    assert (cfg.device, cfg.batch_size, cfg.precision, cfg.align_corners) == ("auto", 25, "fp32", False)
    args = FommAppArgs.parse(
        {
            "device": "cpu",
            "batch_size": 8,
            "precision": "bf16",
            "checkpoints": {"vox": "/m/v.tar"},
            "preload": ["vox"],
        }
    )
    assert args.preload == ("vox",) and args.runner.precision == "bf16"


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"batchsize": 4}, "unknown args"),
        ({"checkpoints": {"taichi": "/x"}}, "unknown checkpoint names"),
        ({"preload": ["vox2"]}, "unknown checkpoint names"),
        ({"precision": "int8"}, "precision"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_args_are_refused(raw, needle):
    with pytest.raises(Exception, match=needle):
        FommAppArgs.parse(raw)


def test_deployment_declares_gpu_fraction_and_bounds():
    d = MotionDeployment
    assert d.ray_actor_options == {"num_cpus": 1, "num_gpus": 0.25}
    assert d.max_ongoing_requests == 4 and d.max_queued_requests == 64
    assert build_app({"device": "cpu"}) is not None
