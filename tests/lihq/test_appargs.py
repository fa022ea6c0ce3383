"""One config per layer (lihq/appargs.py): each stage's app args hold its runner's config, so every
runtime default is defined once (in the runner config), and flat Serve `args:` are routed, typed
and checked."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from lihq.appargs import AppArgs, StageDeployment

STAGES = {
    "fomm": "FommAppArgs",
    "gfpgan": "GfpganAppArgs",
    "media": "MediaAppArgs",
    "modnet": "ModnetAppArgs",
    "qvi": "QVIAppArgs",
    "tts": "TtsAppArgs",
    "wav2lip": "Wav2LipAppArgs",
}


def _args(stage: str) -> type[AppArgs]:
    return getattr(importlib.import_module(f"services.{stage}.deployment"), STAGES[stage])


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_app_args_hold_the_runner_config_and_copy_none_of_its_fields(stage):
    cls = _args(stage)
    runner_type = cls.runner_type()
    own = {f.name for f in dataclasses.fields(cls)} - {"runner"}
    assert not own & {f.name for f in dataclasses.fields(runner_type)}, "a runner setting defined twice"
    parsed = cls.parse({})
    assert parsed.runner == runner_type()  # no args: exactly the runner's own defaults
    assert parsed.app == stage


@pytest.mark.parametrize("stage", ["fomm", "gfpgan", "modnet", "qvi", "wav2lip"])
def test_runner_settings_route_into_the_runner_config(stage):
    parsed = _args(stage).parse({"device": "cpu", "precision": "bf16", "batch_size": 3, "bucket": "b-1"})
    assert (parsed.runner.device, parsed.runner.precision, parsed.runner.batch_size) == ("cpu", "bf16", 3)
    assert parsed.bucket == "b-1"
    with pytest.raises(ValueError, match=f"{stage} app: unknown args \\['batchsize'\\]"):
        _args(stage).parse({"batchsize": 3})
    with pytest.raises(ValueError, match=f"{stage} app: .*precision"):
        _args(stage).parse({"precision": "int8"})
    with pytest.raises(ValueError, match="batch_size must be int"):
        _args(stage).parse({"batch_size": "many"})
    with pytest.raises(ValueError, match="batch_size must be int"):
        _args(stage).parse({"batch_size": True})


def test_yaml_values_are_coerced_to_the_field_types(tmp_path):
    w = _args("wav2lip").parse({"weights_dir": str(tmp_path), "preload": ["s3fd"]})
    assert w.runner.weights_dir == Path(tmp_path) and w.preload == ("s3fd",)
    m = _args("media").parse({"max_duration_s": 60, "audio_rates": [16000, 24000]})
    assert m.runner.max_duration_s == 60.0 and type(m.runner.max_duration_s) is float
    assert m.runner.audio_rates == (16000, 24000)
    t = _args("tts").parse({"tortoise_kv_cache": False, "pauses_sentence_s": 0.5})  # nested settings
    assert t.runner.tortoise.kv_cache is False and t.runner.pauses.sentence_s == 0.5
    assert t.runner.tortoise.batch_size == type(t.runner.tortoise)().batch_size
    with pytest.raises(ValueError, match="unknown args"):
        _args("fomm").parse({"arch": {}})  # the architecture is not a deployment setting


def test_stage_deployments_share_one_base():
    for stage in ("fomm", "gfpgan", "media", "modnet", "qvi", "wav2lip"):
        mod = importlib.import_module(f"services.{stage}.deployment")
        bound = mod.build_app({})._bound_deployment
        assert issubclass(bound.func_or_class, StageDeployment), stage
        assert type(bound.init_args[0]) is _args(stage)
