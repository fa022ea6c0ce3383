"""SpeechServicer on a plain grpc.aio server over a FileStore, with no neural weights (espeak speaks).

Covers the gRPC contract: keys, manifest, chunk offsets, caching, ListVoices and the error codes.
The Ray Serve integration suite runs the same servicer behind Serve's gRPC proxy.
"""

from __future__ import annotations

import asyncio
import json
import threading
from importlib.util import find_spec
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lihq.grpc.server import serve_plain
from lihq.storage import FileStore
from lihq.v1 import common_pb2, speech_pb2, speech_pb2_grpc
from services.tts import audio
from services.tts.runner import TtsRunner, TtsRunnerConfig
from services.tts.servicer import SpeechServicer
from tests.mediafiles import espeak_wav

LONG = (
    "The quick brown fox jumps over the lazy dog. " * 4
    + "Pack my box with five dozen liquor jugs, said the sphinx. " * 4
    + "\n\nHow vexingly quick daft zebras jump! " * 3
)


def serve_in_thread(servicer, service: str):
    """(channel, stop) for `servicer` on a grpc.aio server in its own thread and loop.

    The server is stopped from inside its loop (after `stop()` sets an event), so stopping never
    races the loop's own shutdown.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    async def main():
        names = [speech_pb2.DESCRIPTOR.services_by_name[service]]
        holder["stop"] = asyncio.Event()
        holder["server"], holder["port"] = await serve_plain(servicer, names)
        started.set()
        await holder["stop"].wait()
        await holder["server"].stop(None)

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert started.wait(30)
    ch = grpc.insecure_channel(f"127.0.0.1:{holder['port']}")

    def stop():
        ch.close()
        loop.call_soon_threadsafe(holder["stop"].set)
        t.join(10)
        assert not t.is_alive()

    return ch, stop


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    root = tmp_path_factory.mktemp("tts")
    store = FileStore(root / "store", "lihq")
    runner = TtsRunner(
        TtsRunnerConfig(weights_dir=root / "weights", cache_dir=root / "cache", max_text_chars=2000)
    )
    ch, stop = serve_in_thread(SpeechServicer(store, runner, root / "work"), "SpeechService")
    yield speech_pb2_grpc.SpeechServiceStub(ch), ch, store
    stop()


def _wav(store, ref) -> np.ndarray:
    samples, rate = audio.read_wav(store.get_bytes(ref.key))
    assert rate == 24000
    return samples


def test_health(plain):
    _, ch, _ = plain
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="lihq.v1.SpeechService"))
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_long_text_is_chunked_spoken_and_joined(plain):
    stub, _, store = plain
    req = speech_pb2.SynthesizeRequest(text=LONG, leading_silence_s=0.4, normalize_loudness=True)
    r = stub.Synthesize(req)
    assert (r.backend, r.voice, r.sample_rate) == ("espeak", "en-us", 24000)
    assert r.model_id.startswith("espeak-ng:") and "lihq weights fetch tortoise" in r.note
    assert len(r.chunks) >= 3
    x = _wav(store, r.wav)
    assert x.size / 24000 == pytest.approx(r.duration_s, abs=1e-3) and r.duration_s > 15
    assert not x[: int(0.4 * 24000)].any()  # the leading silence
    assert audio.voiced_rms_db(x, 24000) == pytest.approx(-20.0, abs=0.5)  # normalised
    prev_end = 0.0
    for c in r.chunks:  # chunks in order, each after the previous one and its pause
        assert c.offset_s >= prev_end - 1e-6
        part = x[int(c.offset_s * 24000) : int((c.offset_s + c.duration_s) * 24000)]
        assert audio.voiced_rms_db(part, 24000) > -35  # there is speech where the manifest says
        assert store.exists(c.wav.key) and c.wav.key.startswith("cache/tts/")
        prev_end = c.offset_s + c.duration_s + c.pause_after_s
    assert r.chunks[-1].pause_after_s == 0.0
    manifest = json.loads(store.get_bytes(r.manifest.key))
    assert manifest["backend"] == "espeak" and manifest["model_id"] == r.model_id and manifest["seed"] == 0
    assert [m["offset_s"] for m in manifest["chunks"]] == [pytest.approx(c.offset_s) for c in r.chunks]
    assert manifest["wav"]["key"] == r.wav.key and manifest["leading_silence_s"] == 0.4


def test_same_request_same_keys_and_cache_hit(plain):
    stub, _, _ = plain
    req = speech_pb2.SynthesizeRequest(
        text="Caching is content addressed. Twice.", options=speech_pb2.SpeechOptions(seed=3)
    )
    a, b = stub.Synthesize(req), stub.Synthesize(req)
    assert (a.wav.key, a.manifest.key, a.wav.sha256) == (b.wav.key, b.manifest.key, b.wav.sha256)
    assert not a.metrics.cache_hit and b.metrics.cache_hit
    assert [c.wav.key for c in a.chunks] == [c.wav.key for c in b.chunks]
    lead = stub.Synthesize(
        speech_pb2.SynthesizeRequest(text=req.text, options=req.options, leading_silence_s=0.3)
    )
    assert lead.wav.key != a.wav.key  # a different output ...
    assert lead.metrics.extra["chunk_cache_hits"] == len(lead.chunks)  # ... from the cached chunks
    other = stub.Synthesize(
        speech_pb2.SynthesizeRequest(text=req.text, options=speech_pb2.SpeechOptions(seed=4))
    )
    assert other.wav.key != a.wav.key  # the seed is part of the key


def test_synthesize_chunk_matches_the_chunks_of_synthesize(plain):
    stub, _, store = plain
    opts = speech_pb2.SpeechOptions(backend="espeak", voice="de", rate_wpm=200, pitch=60)
    full = stub.Synthesize(speech_pb2.SynthesizeRequest(text="Guten Tag.", options=opts))
    one = stub.SynthesizeChunk(speech_pb2.SynthesizeChunkRequest(text="Guten Tag.", options=opts))
    assert one.wav.key == full.chunks[0].wav.key and one.metrics.cache_hit
    assert one.duration_s == pytest.approx(full.chunks[0].duration_s, abs=1e-3)
    assert full.voice == "de" and full.note == ""  # an explicit backend needs no note


def test_list_voices(plain):
    stub, _, _ = plain
    r = stub.ListVoices(speech_pb2.ListVoicesRequest())
    by_backend = {b.name: b for b in r.backends}
    assert r.default_backend == "espeak" and by_backend["espeak"].available
    assert (
        not by_backend["tortoise"].available
        and "lihq weights fetch tortoise" in by_backend["tortoise"].reason
    )
    assert not by_backend["bark"].available and "lihq weights fetch bark" in by_backend["bark"].reason
    assert list(by_backend["tortoise"].presets) == ["ultra_fast", "fast", "standard", "high_quality"]
    assert by_backend["tortoise"].clones_voices and not by_backend["espeak"].clones_voices
    ids = {(v.backend, v.id) for v in r.voices}
    assert {("espeak", "en-us"), ("espeak", "+f3"), ("tortoise", "random")} <= ids
    if not (find_spec("tortoise") and find_spec("bark")):
        return  # their voices ship with the packages (the `tts` extra)
    assert {("tortoise", "tom"), ("bark", "v2/en_speaker_6")} <= ids
    de = stub.ListVoices(speech_pb2.ListVoicesRequest(backend="bark", language="de"))
    assert (
        de.voices and all(v.language == "de" for v in de.voices) and [b.name for b in de.backends] == ["bark"]
    )


def _opts(**kw) -> speech_pb2.SpeechOptions:
    return speech_pb2.SpeechOptions(**kw)


INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    "text, opts, lead, code, needle",
    [
        ("", _opts(), 0.0, INVALID, "text is empty"),
        ("   \n ", _opts(), 0.0, INVALID, "text is empty"),
        ("?!...", _opts(), 0.0, INVALID, "nothing to speak"),
        ("x" * 2001, _opts(), 0.0, INVALID, "limit is 2000"),
        ("Hi", _opts(language="xx"), 0.0, INVALID, "no voice or language 'xx'"),
        ("Hi", _opts(voice="nobody"), 0.0, INVALID, "'nobody'"),
        ("Hi", _opts(backend="festival"), 0.0, INVALID, "unknown TTS backend"),
        ("Hi", _opts(preset="fast"), 0.0, INVALID, "no presets"),
        ("Hi", _opts(rate_wpm=1000), 0.0, INVALID, "rate 1000"),
        ("Hi", _opts(), 5.0, INVALID, "leading_silence_s"),
        ("Hi", _opts(backend="tortoise", voice="nobody"), 0.0, INVALID, "unknown tortoise voice"),
        ("Hi", _opts(backend="tortoise", language="de"), 0.0, INVALID, "English only"),
        ("Hi", _opts(backend="tortoise", preset="turbo"), 0.0, INVALID, "unknown tortoise preset"),
        ("Hi", _opts(backend="tortoise", rate_wpm=200), 0.0, INVALID, "espeak backend only"),
        ("Hi", _opts(backend="bark", voice="v2/xx_speaker_1"), 0.0, INVALID, "unknown bark voice"),
        ("Hi", _opts(backend="bark", language="sw"), 0.0, INVALID, "bark speaks"),
        ("Hi", _opts(backend="tortoise"), 0.0, PRECONDITION, "lihq weights fetch tortoise"),
        (
            "Hi",
            _opts(backend="tortoise", voice="tom&emma", preset="ultra_fast"),
            0.0,
            PRECONDITION,
            "fetch tortoise",
        ),
        ("Hi", _opts(backend="bark"), 0.0, PRECONDITION, "lihq weights fetch bark"),
    ],
)
def test_error_codes(plain, text, opts, lead, code, needle):
    stub, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.Synthesize(speech_pb2.SynthesizeRequest(text=text, options=opts, leading_silence_s=lead))
    assert ei.value.code() == code and needle in ei.value.details()


def test_reference_clips_errors(plain, tmp_path):
    stub, _, store = plain
    keys = [
        store.put_file(f"uploads/c{i}.wav", espeak_wav(tmp_path / f"c{i}.wav", "one two three")).key
        for i in range(3)
    ]
    clips = [common_pb2.ObjectRef(key=k) for k in keys]

    def call(**kw):
        with pytest.raises(grpc.RpcError) as ei:
            stub.Synthesize(speech_pb2.SynthesizeRequest(text="Hi", options=_opts(**kw)))
        return ei.value

    e = call(backend="espeak", reference_clips=clips)
    assert e.code() == INVALID and "cannot clone" in e.details()
    e = call(reference_clips=clips)  # clips pick tortoise, whose weights are not here
    assert e.code() == PRECONDITION and "lihq weights fetch tortoise" in e.details()
    e = call(backend="tortoise", reference_clips=clips[:1])
    assert e.code() == INVALID and "2-10 clips" in e.details()
    e = call(backend="tortoise", voice="tom", reference_clips=clips)
    assert e.code() == INVALID and "not both" in e.details()
    e = call(backend="tortoise", reference_clips=[*clips[:2], common_pb2.ObjectRef(key="uploads/none.wav")])
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = call(backend="tortoise", reference_clips=clips)  # valid clips, but no weights here
    assert e.code() == PRECONDITION and "lihq weights fetch tortoise" in e.details()


def test_chunk_size_limit(plain):
    stub, _, _ = plain
    with pytest.raises(grpc.RpcError) as ei:
        stub.SynthesizeChunk(speech_pb2.SynthesizeChunkRequest(text="word " * 200))
    assert ei.value.code() == INVALID and "use Synthesize" in ei.value.details()


def test_store_paths_are_content_addressed(plain):
    stub, _, store = plain
    r = stub.Synthesize(speech_pb2.SynthesizeRequest(text="Where does it go?"))
    parts = Path(r.wav.key).parts
    assert parts[:2] == ("cache", "tts") and len(parts[2]) == 64 and parts[3] == "speech.wav"
    assert Path(r.manifest.key).parent == Path(r.wav.key).parent
