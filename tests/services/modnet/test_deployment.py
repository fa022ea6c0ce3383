"""The `modnet` Serve app's typed args and builder (the Ray Serve run itself is the integration suite's)."""

from __future__ import annotations

import pytest

from lihq.errors import WeightsMissing
from services.modnet.deployment import MattingDeployment, ModnetAppArgs, build_app


def test_args_parse_and_reject_unknown_or_bad_values():
    args = ModnetAppArgs.parse({"device": "cpu", "batch_size": 4, "precision": "bf16"})
    cfg = args.runner
    assert (cfg.device, cfg.batch_size, cfg.precision, cfg.ref_size) == ("cpu", 4, "bf16", 512)
    with pytest.raises(ValueError, match="unknown args"):
        ModnetAppArgs.parse({"batchsize": 4})
    with pytest.raises(ValueError, match="precision"):
        ModnetAppArgs.parse({"precision": "int8"})


def test_weights_come_from_the_explicit_path_or_the_registry(modnet_ckpt, tmp_path, monkeypatch):
    runner = ModnetAppArgs.parse({"weights": str(modnet_ckpt), "device": "cpu"}).load_runner()
    assert runner.model_id == "synthetic:3"
    monkeypatch.setenv("LIHQ_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsMissing, match="lihq weights fetch modnet"):
        ModnetAppArgs.parse({}).load_runner()


def test_deployment_declares_resources():
    opts = MattingDeployment.ray_actor_options
    assert opts["num_gpus"] == 0.25 and opts["num_cpus"] == 1
    assert MattingDeployment.max_ongoing_requests == 4
    assert build_app({"device": "cpu"}) is not None
