"""The tts app's typed args and builder (the Serve integration suite deploys it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lihq.errors import InvalidInput, WeightsMissing
from services.tts.deployment import SpeechDeployment, SpeechWorker, TtsAppArgs, _retyped, build_app


def test_args_parse_types_and_unknown_keys():
    a = TtsAppArgs.parse(
        {"device": "cpu", "tortoise_batch_size": 8, "bark_max_gen_duration_s": 10, "preload": ["espeak"]}
    )
    assert a.runner.device == "cpu" and a.runner.tortoise.batch_size == 8
    assert a.runner.bark.max_gen_duration_s == 10.0
    assert a.preload == ("espeak",)
    with pytest.raises(ValueError, match="unknown args"):
        TtsAppArgs.parse({"devcie": "cpu"})
    with pytest.raises(ValueError, match="max_text_chars must be int"):
        TtsAppArgs.parse({"max_text_chars": "many"})
    with pytest.raises(ValueError, match="preload"):
        TtsAppArgs.parse({"preload": "tortoise"})


def test_runner_config_from_args(tmp_path):
    cfg = TtsAppArgs.parse(
        {"weights_dir": str(tmp_path), "tortoise_half": True, "max_text_chars": 100}
    ).runner
    assert cfg.weights_dir == Path(tmp_path) and cfg.tortoise.half and cfg.max_text_chars == 100
    assert cfg.bark.max_gen_duration_s is None
    with pytest.raises(ValueError, match="bark_max_gen_duration_s must be > 0"):
        TtsAppArgs.parse({"bark_max_gen_duration_s": 0})


def test_build_app_binds_ingress_and_workers():
    app = build_app({"device": "cpu"})
    assert app is not None
    assert SpeechDeployment.name == "SpeechService" and SpeechWorker.name == "SpeechWorker"
    assert SpeechDeployment.ray_actor_options["num_gpus"] == 0
    assert SpeechWorker.ray_actor_options["num_gpus"] == 0.25


def test_worker_errors_come_back_typed():
    class Wrapped(Exception):
        def __init__(self, cause):
            self.cause = cause

    typed = _retyped(Wrapped(WeightsMissing("run `lihq weights fetch tortoise`")))
    assert isinstance(typed, WeightsMissing) and typed.message == "run `lihq weights fetch tortoise`"
    assert isinstance(_retyped(Wrapped(InvalidInput("bad"))), InvalidInput)
    plain = RuntimeError("boom")
    assert _retyped(plain) is plain
