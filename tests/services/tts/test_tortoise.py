"""The tortoise backend on the REAL tortoise-tts inference path, on CPU, with tiny random networks.

The networks are the package's own classes at tiny sizes, saved in the official file layouts and
loaded through our loader and the package's offline `get_model_path`; then the package's
`tts_with_preset` runs: autoregressive sampling -> CLVP ranking -> diffusion -> UnivNet vocoder.
Forward hooks count the calls into each network (they observe; nothing is replaced).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import torch

pytest.importorskip("tortoise")

from lihq.errors import InvalidInput, WeightsMissing  # noqa: E402
from lihq.storage import FileStore  # noqa: E402
from lihq.v1 import common_pb2, speech_pb2, speech_pb2_grpc  # noqa: E402
from lihq.weights.loaders import WrongCheckpoint  # noqa: E402
from services.tts.backends import tortoise_checkpoint as tl  # noqa: E402
from services.tts.backends.tortoise import TortoiseSettings  # noqa: E402
from services.tts.runner import TtsRunner, TtsRunnerConfig  # noqa: E402
from services.tts.servicer import SpeechServicer  # noqa: E402
from tests.mediafiles import espeak_wav  # noqa: E402
from tests.services.tts.test_servicer import serve_in_thread  # noqa: E402
from tests.services.tts.tiny import TINY_TORTOISE, write_tiny_tortoise  # noqa: E402

SETTINGS = TortoiseSettings(arch=TINY_TORTOISE, batch_size=16, max_mel_tokens=8)


def make_runner(root: Path) -> TtsRunner:
    cfg = TtsRunnerConfig(
        weights_dir=root / "weights", cache_dir=root / "cache", device="cpu", tortoise=SETTINGS
    )
    return TtsRunner(cfg)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tortoise")
    write_tiny_tortoise(root / "weights", seed=0)
    return root


@pytest.fixture(scope="module")
def runner(root) -> TtsRunner:
    return make_runner(root)


def _count_calls(module: torch.nn.Module, counts: dict, name: str):
    counts[name] = 0

    def hook(*_):
        counts[name] += 1

    return module.register_forward_hook(hook)


def test_default_backend_is_tortoise_once_weights_exist(runner):
    assert runner.default_backend() == ("tortoise", "")
    assert runner.backend("tortoise").model_id().startswith("sha256:")


@pytest.fixture(scope="module")
def first_render(runner):
    """One render of "Hello there." (random voice, seed 1, ultra_fast) with call counts per network."""
    be = runner.backend("tortoise")
    opts = be.resolve("", "en", "ultra_fast", 1, 0, None)
    tts = be._load()
    counts: dict[str, int] = {}
    hooks = [
        _count_calls(tts.autoregressive.inference_model, counts, "gpt_steps"),
        _count_calls(tts.clvp, counts, "clvp"),
        _count_calls(tts.diffusion, counts, "diffusion"),
        _count_calls(tts.vocoder.conv_pre, counts, "vocoder"),  # inference() calls forward() directly
    ]
    try:
        audio = be.render("Hello there.", opts)
    finally:
        for h in hooks:
            h.remove()
    return opts, audio, counts


def test_full_chain_runs_on_cpu(first_render):
    opts, a, counts = first_render
    assert (opts.voice, opts.preset) == ("random", "ultra_fast")
    assert counts["gpt_steps"] >= SETTINGS.max_mel_tokens  # sampled token by token (16 candidates at once)
    assert counts["clvp"] == 1  # ranks the 16 candidates in one batch
    assert counts["diffusion"] == 30  # ultra_fast: 30 diffusion steps, no conditioning-free pass
    assert counts["vocoder"] == 1
    assert a.dtype == np.float32 and np.isfinite(a).all() and np.abs(a).max() > 0
    assert 0.15 < a.size / 24000 < 0.5  # 8 mel tokens ~ 0.37 s


def test_same_seed_same_samples(runner, first_render):
    opts, a, _ = first_render
    assert np.array_equal(a, runner.backend("tortoise").render("Hello there.", opts))


def test_files_come_through_the_packages_offline_hub_lookup(runner, root):
    import huggingface_hub.constants as hub

    be = runner.backend("tortoise")
    be._load()
    assert hub.HF_HUB_OFFLINE
    models_dir = be.models_dir()
    path = tl.package_path(models_dir, "autoregressive.pth")
    assert (
        path.is_symlink()
        and path.resolve() == (root / "weights" / "tortoise" / "autoregressive.pth").resolve()
    )
    assert "models--Manmay--tortoise-tts" in str(path)


def test_builtin_voice_and_blend_resolution(runner, first_render):
    be = runner.backend("tortoise")
    assert (
        be.resolve("tom&emma", "", "", 0, 0, None).voice == be.resolve("emma & tom", "", "", 0, 0, None).voice
    )
    assert be.resolve("tom&tom", "", "", 0, 0, None).voice == "tom"
    for bad, needle in [("tom&emma&pat", "blend of two"), ("nobody", "unknown tortoise voice")]:
        with pytest.raises(InvalidInput, match=needle):
            be.resolve(bad, "", "", 0, 0, None)
    opts = be.resolve("train_atkins", "", "ultra_fast", 1, 0, None)
    x = be.render("Hello there.", opts)
    assert x.size > 0 and not np.array_equal(x[: first_render[1].size], first_render[1][: x.size])
    assert "train_atkins" in be._latents  # computed once per voice and kept
    auto, diffusion = be._latents["train_atkins"]
    assert auto.shape == (1, TINY_TORTOISE.ar_dim) and diffusion.shape == (
        1,
        2 * TINY_TORTOISE.diffusion_channels,
    )


def test_strict_loading(tmp_path, root):
    nets = tl._networks(TINY_TORTOISE)
    good = root / "weights" / "tortoise" / "clvp2.pth"
    tl.load_into(nets["clvp"], good, "clvp")
    sd = torch.load(good, weights_only=True)
    sd["to_text_latent.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(WrongCheckpoint, match="to_text_latent.weight"):
        tl.load_into(nets["clvp"], tmp_path / "shape.pth", "clvp")
    sd.pop("to_text_latent.weight")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(WrongCheckpoint, match="extra.weight"):
        tl.load_into(nets["clvp"], tmp_path / "extra.pth", "clvp")
    ar = torch.load(root / "weights" / "tortoise" / "autoregressive.pth", weights_only=True)
    assert "gpt.h.0.attn.masked_bias" in ar  # the official layout's extra buffers are what the filter drops
    tl.load_into(
        nets["autoregressive"], root / "weights" / "tortoise" / "autoregressive.pth", "autoregressive"
    )


def test_random_voice_needs_the_rlg_files(tmp_path, root):
    shutil.copytree(root / "weights", tmp_path / "weights")
    for name in tl.RLG_FILES:
        (tmp_path / "weights" / "tortoise" / name).unlink()
    be = make_runner(tmp_path).backend("tortoise")
    assert tl._rlgs(be.models_dir(), TINY_TORTOISE) == (None, None)
    with pytest.raises(
        WeightsMissing, match="rlg_auto.pth and rlg_diffuser.pth; run `lihq weights fetch tortoise`"
    ):
        tl.require_rlg(SimpleNamespace(rlg_auto=None))
    (tmp_path / "weights" / "tortoise" / "vocoder.pth").unlink()
    fresh = make_runner(tmp_path)
    assert fresh.default_backend()[0] == "espeak"
    with pytest.raises(WeightsMissing, match="vocoder.pth"):
        fresh.plan("Hi.", backend="tortoise")


@pytest.fixture(scope="module")
def grpc_tortoise(root, runner):
    store = FileStore(root / "store", "lihq")
    ch, stop = serve_in_thread(SpeechServicer(store, runner, root / "work"), "SpeechService")
    yield speech_pb2_grpc.SpeechServiceStub(ch), store, runner
    stop()


def _clip(store, tmp: Path, name: str, text: str) -> common_pb2.ObjectRef:
    return common_pb2.ObjectRef(
        key=store.put_file(f"uploads/{name}.wav", espeak_wav(tmp / f"{name}.wav", text)).key
    )


def test_uploaded_voice_latents_computed_once_and_cached(grpc_tortoise, tmp_path, monkeypatch):
    stub, store, runner = grpc_tortoise
    be = runner.backend("tortoise")
    calls = []
    original = be.voice_from_clips
    monkeypatch.setattr(be, "voice_from_clips", lambda clips: calls.append(len(clips)) or original(clips))
    clips = [
        _clip(store, tmp_path, f"v{i}", f"Reference clip number {i} of my voice, long enough.")
        for i in range(2)
    ]
    opts = speech_pb2.SpeechOptions(backend="tortoise", preset="ultra_fast", seed=5, reference_clips=clips)
    r1 = stub.Synthesize(speech_pb2.SynthesizeRequest(text="First sentence.", options=opts))
    assert r1.voice.startswith("clips:") and r1.backend == "tortoise"
    assert r1.duration_s > 0.1 and r1.model_id == be.model_id()
    assert calls == [2]  # computed once before the chunks fan out; the chunk read them from the store
    assert any(o.key.endswith("/latents.pt") for o in store.list("cache/tts/"))
    r2 = stub.Synthesize(
        speech_pb2.SynthesizeRequest(text="First sentence.", options=opts, leading_silence_s=0.3)
    )
    assert r2.voice == r1.voice and r2.wav.key != r1.wav.key and r2.metrics.extra["chunk_cache_hits"] == 1
    assert calls == [2]  # the same clips again: latents from the store
    again = stub.Synthesize(speech_pb2.SynthesizeRequest(text="First sentence.", options=opts))
    assert again.metrics.cache_hit and again.wav.key == r1.wav.key


def test_bad_reference_clips_are_invalid_argument(grpc_tortoise, tmp_path):
    stub, store, _ = grpc_tortoise
    good = [_clip(store, tmp_path, f"g{i}", "A good clip with enough speech in it to use.") for i in range(2)]
    short = _clip(store, tmp_path, "short", "Hi")
    silent_path = tmp_path / "silent.wav"
    from lihq import media

    media.write_wav(silent_path, np.zeros(48000, np.float32), 16000)
    silent = common_pb2.ObjectRef(key=store.put_file("uploads/silent.wav", silent_path).key)
    text = tmp_path / "text.wav"
    text.write_text("not audio\n" * 100)
    notaudio = common_pb2.ObjectRef(key=store.put_file("uploads/text.wav", text).key)
    for clips, needle in [
        ([*good, short], "clip 3 lasts"),
        ([silent, *good], "clip 1 is silent"),
        ([good[0], notaudio], "clip 2 is not usable audio"),
    ]:
        opts = speech_pb2.SpeechOptions(backend="tortoise", preset="ultra_fast", reference_clips=clips)
        with pytest.raises(grpc.RpcError) as ei:
            stub.Synthesize(speech_pb2.SynthesizeRequest(text="Hi.", options=opts))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in ei.value.details()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_models_stay_resident_on_cuda(root):
    cfg = TtsRunnerConfig(
        weights_dir=root / "weights", cache_dir=root / "cache-gpu", device="cuda", tortoise=SETTINGS
    )
    be = TtsRunner(cfg).backend("tortoise")
    tts = be._load()
    assert all(
        next(getattr(tts, n).parameters()).is_cuda for n in ("autoregressive", "diffusion", "clvp", "vocoder")
    )
    rng = np.random.default_rng(0)
    latents = be.voice_from_clips(
        [(0.1 * rng.standard_normal(22050 * 3)).astype(np.float32) for _ in range(2)]
    )
    x = be.render("Hello there.", be.resolve("", "", "ultra_fast", 1, 0, None), latents)
    y = be.render("Hello there.", be.resolve("random", "", "ultra_fast", 1, 0, None))
    assert x.size > 0 and y.size > 0 and np.isfinite(x).all()
    assert next(tts.autoregressive.parameters()).is_cuda  # moved back after conditioning
