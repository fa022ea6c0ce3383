"""Typed app args of the `qvi` Serve app (the deployment itself runs in the integration suite)."""

from __future__ import annotations

import pytest

from services.qvi.deployment import QVIAppArgs, QVIDeployment, build_app


def test_args_are_typed_and_unknown_keys_refused():
    args = QVIAppArgs.parse({"precision": "bf16", "batch_size": 8, "num_gpus": 0.5})
    assert (args.runner.precision, args.runner.batch_size, args.num_gpus) == ("bf16", 8, 0.5)
    assert args.runner.device == "auto" and args.runner.model_path is None  # resolved on the replica
    with pytest.raises(ValueError, match="unknown args"):
        QVIAppArgs.parse({"batchsize": 8})
    with pytest.raises(ValueError, match="batch_size"):
        QVIAppArgs.parse({"batch_size": 0})
    with pytest.raises(ValueError, match="precision"):
        QVIAppArgs.parse({"precision": "int8"})


def test_build_app_takes_the_gpu_share_from_args():
    app = build_app({"num_gpus": 0, "num_cpus": 0.5})
    assert app._bound_deployment.ray_actor_options == {"num_cpus": 0.5, "num_gpus": 0}
    assert QVIDeployment.ray_actor_options["num_gpus"] == 0.25  # the code default
    assert build_app({})._bound_deployment.ray_actor_options == {"num_cpus": 1.0, "num_gpus": 0.25}
