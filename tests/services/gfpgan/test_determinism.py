"""Same render seed -> byte-identical restored frames across segments and runs; smoothing.

Detections are injected and the nets are tiny (see fakes.py); the noise and batching logic is what
is tested, and it does not depend on the nets' width.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.gfpgan.detect import smooth_landmarks
from services.gfpgan.noise import NoiseSpec, NoisyRestorer, noise_buffers, seeded_noise
from services.gfpgan.runner import GfpganConfig, GfpganRunner, RestoreParams
from tests.services.gfpgan.fakes import InjectedDetector, make_frames, tiny_models


@pytest.fixture(scope="module")
def clip(face_models, weights_dir):
    """4 BGR frames with one face each; a factory of fresh runners (batch 2, padded) over tiny nets."""
    frames, dets = make_frames(4, 64, seed=5)
    rgb = np.ascontiguousarray(frames[..., ::-1])
    detector = InjectedDetector(frames, dets)

    def runner() -> GfpganRunner:
        cfg = GfpganConfig(weights_dir=weights_dir, batch_size=2, paste_workers=1)
        return GfpganRunner(cfg, tiny_models(face_models, detector))

    return rgb, runner


def params(mode: str = "seeded", seed: int = 7, **kw) -> RestoreParams:
    return RestoreParams(upscale=1, noise=NoiseSpec(mode, seed), **kw)


def test_same_seed_gives_identical_bytes_across_segments_and_runs(clip):
    rgb, runner = clip
    r = runner()
    a = r.restore(rgb[0:3], params()).frames  # frame 2 sits alone in a padded batch
    b = r.restore(rgb[1:3], params()).frames  # frame 2 is second in a full batch
    c = runner().restore(rgb[2:3], params()).frames  # another runner (a new run)
    assert np.array_equal(a[1], b[0]) and np.array_equal(a[2], b[1]) and np.array_equal(a[2], c[0])
    other_seed = r.restore(rgb[2:3], params(seed=8)).frames
    assert not np.array_equal(c, other_seed)


def test_stored_noise_is_deterministic_and_random_noise_is_not(clip):
    rgb, runner = clip
    r = runner()
    stored = [r.restore(rgb[3:4], params("stored")).frames for _ in range(2)]
    assert np.array_equal(*stored)
    rand = [r.restore(rgb[3:4], params("random")).frames for _ in range(2)]
    assert not np.array_equal(*rand)


def test_seeded_noise_is_shaped_like_the_stored_buffers_and_reproducible(face_models):
    net = tiny_models(face_models, None).restorers["1.4"]
    a, b = seeded_noise(net, 3, torch.device("cpu")), seeded_noise(net, 3, torch.device("cpu"))
    assert [t.shape for t in a] == [t.shape for t in noise_buffers(net)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[-1], seeded_noise(net, 4, torch.device("cpu"))[-1])
    x = torch.zeros(2, 3, 512, 512)
    with torch.no_grad():
        out = NoisyRestorer(net, NoiseSpec("seeded", 3), torch.device("cpu"))(x)[0]
    assert torch.equal(out[0], out[1])  # one noise for the whole batch


def test_smooth_landmarks_averages_single_face_runs_only():
    lm = [np.full((5, 2), float(i), np.float32) for i in range(6)]
    per_frame = [[lm[0]], [lm[1]], [lm[2]], [lm[3], lm[3]], [lm[4]], [lm[5]]]
    out = smooth_landmarks(per_frame, radius=1)
    assert [float(f[0][0, 0]) for f in out[:3]] == [0.5, 1.0, 1.5]
    assert len(out[3]) == 2 and float(out[3][0][0, 0]) == 3.0  # two faces: untouched, breaks the run
    assert [float(f[0][0, 0]) for f in out[4:]] == [4.5, 4.5]
    assert smooth_landmarks(per_frame, 0) is per_frame


def test_smoothing_uses_context_frames(clip):
    rgb, runner = clip
    r = runner()
    smooth = params(smooth_landmarks=True, smooth_radius=1)
    with_ctx = r.restore(rgb[0:3], smooth, context=(1, 1)).frames
    alone = r.restore(rgb[1:2], smooth).frames
    plain = r.restore(rgb[1:2], params()).frames
    assert with_ctx.shape == alone.shape == (1, 64, 64, 3)
    assert np.array_equal(alone, plain)  # a lone frame has nothing to average with
    assert not np.array_equal(with_ctx, plain)
