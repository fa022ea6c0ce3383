"""Procedural-motion presets (issue #15): the default is the motion from before presets, frame for frame
and cache key for key; the named presets differ from each other; an unknown name is INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from lihq.errors import InvalidInput
from lihq.framepack import pack_frames, unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.media import procedural_motion as motion
from services.media.servicer import MediaServicer
from tests.plaingrpc import plain_server


def _legacy_poses(start: int, end: int, seed: int, fps: float = 25.0) -> np.ndarray:
    """The procedural motion as it was before presets (frozen here): the default must equal it."""
    t = np.arange(start, end, dtype=np.float64) / fps
    freqs = (0.13, 0.29, 0.47)

    def curve(dof):
        rng = np.random.default_rng([seed, dof])
        phases = rng.uniform(0, 2 * np.pi, 3)
        weights = rng.uniform(0.5, 1.0, 3)
        return (
            sum(w * np.sin(2 * np.pi * f * t + p) for f, w, p in zip(freqs, weights, phases, strict=True))
            / weights.sum()
        )

    return np.stack([3.0 * curve(0), 0.025 * curve(1), 0.025 * curve(2), 1.0 + 0.02 * curve(3)], axis=1)


@pytest.mark.parametrize("name", ["", "sway"])
def test_default_preset_is_the_motion_from_before_presets(name):
    for seed in (0, 3, 2**32 - 1):
        assert np.array_equal(motion.poses(7, 130, motion.preset(name, seed)), _legacy_poses(7, 130, seed))
    assert motion.preset(name, 3) == motion.MotionParams(seed=3)


def test_presets_differ_from_each_other_and_do_what_they_say():
    t = {n: motion.poses(0, 500, motion.preset(n, seed=2)) for n in motion.PRESETS}
    names = sorted(t)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.allclose(t[a], t[b]), (a, b)
    peak = {n: np.abs(p - [0, 0, 0, 1]).max(axis=0) for n, p in t.items()}  # roll, dx, dy, zoom
    assert (peak["calm"] < peak["sway"]).all() and (peak["lively"] > peak["sway"]).all()
    assert peak["nodding"][2] > 3 * peak["nodding"][1]  # mostly vertical: nods
    assert not peak["still"].any()

    def speed(p):  # mean absolute frame-to-frame change of dy, per unit amplitude
        return np.abs(np.diff(p[:, 2])).mean() / np.abs(p[:, 2]).max()

    assert speed(t["nodding"]) > 2 * speed(t["sway"]) > 2 * speed(t["calm"])
    crop = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    still = motion.drive(crop, 0, 5, motion.preset("still"))
    assert all(np.array_equal(f, crop) for f in still)


def test_unknown_preset_names_the_field_and_lists_the_names():
    with pytest.raises(InvalidInput) as ei:
        motion.preset("wild")
    assert ei.value.message.startswith("motion 'wild'")
    assert all(n in ei.value.message for n in motion.PRESETS)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("presets") / "store", "lihq")
    crop = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    info = store.put_bytes("cache/media/test/crop.lfp", pack_frames(crop, fps=25.0, start=0))
    with plain_server(MediaServicer(store), [media_pb2.DESCRIPTOR.services_by_name["MediaService"]]) as ch:
        yield media_pb2_grpc.MediaServiceStub(ch), store, common_pb2.ObjectRef(key=info.key)


def test_procedural_motion_rpc_presets_and_cache_keys(media):
    stub, store, crop = media
    seg = common_pb2.Segment(start=0, end=12)

    def call(name):
        return stub.ProceduralMotion(
            media_pb2.ProceduralMotionRequest(face=crop, segment=seg, seed=2, motion=name)
        )

    keys = {n: call(n).pack.key for n in ("", "sway", "calm", "lively", "nodding")}
    assert keys[""] == keys["sway"]  # the default keeps its cache key (and so cached renders resume)
    assert len({keys[n] for n in ("", "calm", "lively", "nodding")}) == 4
    frames = unpack_frames(store.get_bytes(keys["calm"])).frames
    assert np.array_equal(
        frames,
        motion.drive(unpack_frames(store.get_bytes(crop.key)).frames[0], 0, 12, motion.preset("calm", 2)),
    )
    with pytest.raises(grpc.RpcError) as ei:
        call("wild")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "motion 'wild'" in ei.value.details()
