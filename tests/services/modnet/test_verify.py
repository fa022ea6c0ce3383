"""`services.modnet.verify` on the public vectors (CI conformance) and on other sets of the same schema.

The extra sets are written here with our own network (seed 7, other sizes, two pipeline cases): they
check that the verifier is driven by the set's files (not tuned to the public one) and that it catches
wrong weights; conformance to upstream itself is the public set's job.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lihq.verify import run_verify
from lihq.weights import synthesize
from lihq.weights.loaders import load_state_dict
from lihq.weights.synth import state_dict_fingerprint
from services.modnet import verify
from services.modnet.runner import ModnetConfig, ModnetRunner, network_size
from tests.reference import needs, ref_path

PUBLIC = ref_path("modnet", "vectors")
# a set made here with LIHQ's own fill rule ships it, as every vector set ships its fill_weights.py
LIHQ_FILL = "from lihq.weights.fill import fill_tensor  # noqa: F401\n"


@needs("modnet/vectors/vectors.json", "fill_weights.py")
def test_public_vectors_pass(tmp_path):
    rows = verify.run(PUBLIC, 1, tmp_path)
    outputs = {r.output.split(" ")[0] for r in rows}
    for name in ("net_matte.npy", "net_pred_semantic_train_mode.npy", "pipeline_matte_uint8.npy"):
        assert name in outputs
    assert len(rows) >= 10
    assert [r for r in rows if not r.ok] == []


def _save(d: Path, index: dict, name: str, arr: np.ndarray) -> None:
    np.save(d / name, arr)
    index[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}


def _make_set(d: Path, seed: int) -> Path:
    """A vector set in the public schema computed with our runner: net case 64x96, two pipeline cases
    with their own ref sizes (256, 128) in `_meta`."""
    d.mkdir()
    ckpt = synthesize("modnet", seed, d / "w")[0]
    runner = ModnetRunner.from_checkpoint(ckpt, ModnetConfig(device="cpu"))
    rng = np.random.default_rng(seed)
    index: dict = {"_meta": {}}
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 96)).astype(np.float32))
    _save(d, index, "net_input.npy", x.numpy())
    _save(d, index, "net_matte.npy", runner.forward(x)[2].numpy())
    _save(d, index, "net_pred_semantic_train_mode.npy", runner.forward(x, inference=False)[0].numpy())
    for prefix, (h, w), ref in (("pipeline", (40, 56), 256), ("pipeline_b", (72, 40), 128)):
        case = ModnetRunner(runner.model, ModnetConfig(device="cpu", ref_size=ref), runner.model_id)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        _save(d, index, f"{prefix}_image_rgb_uint8.npy", img)
        _save(d, index, f"{prefix}_matte.npy", case.matte(img[None])[:, None])
        _save(d, index, f"{prefix}_matte_uint8.npy", case.matte_uint8(img[None])[0])
        rh, rw = network_size(h, w, ref)
        index["_meta"][prefix] = {"im_h": h, "im_w": w, "im_rh": rh, "im_rw": rw, "ref_size": ref}
    (d / "vectors.json").write_text(json.dumps(index))
    (d / "fill_weights.py").write_text(LIHQ_FILL)
    fp = state_dict_fingerprint(load_state_dict(ckpt, strip_prefix=None))
    (d / "manifests").mkdir()
    table = {"fingerprints": {f"{verify.MANIFEST}@seed{seed}": {"sha256": fp}}}
    (d / "manifests" / "weights_fingerprints.json").write_text(json.dumps(table))
    return d


@pytest.fixture(scope="module")
def other_set(tmp_path_factory):
    return _make_set(tmp_path_factory.mktemp("sets") / "seed7", 7)


def test_other_set_is_driven_by_its_own_files(other_set, tmp_path):
    rows = verify.run(other_set, 7, tmp_path)
    assert {r.case for r in rows} >= {"net", "pipeline", "pipeline_b", "weights"}
    assert [r for r in rows if not r.ok] == []


def _subset(src: Path, dest: Path, names: list[str], extra: dict | None = None) -> Path:
    """A set with only `names` of `src` (symlinked) plus `extra` vectors.json entries."""
    dest.mkdir()
    index = json.loads((src / "vectors.json").read_text())
    for name in names:
        (dest / name).symlink_to(src / name)
    kept = {k: v for k, v in index.items() if k in names}
    (dest / "vectors.json").write_text(json.dumps({**kept, **(extra or {})}))
    (dest / "fill_weights.py").write_text(LIHQ_FILL)
    return dest


def test_wrong_seed_is_caught(other_set, tmp_path):
    small = _subset(other_set, tmp_path / "net", ["net_input.npy", "net_matte.npy"])
    rows = verify.run(small, 1, tmp_path / "w")
    assert [r.output for r in rows if not r.ok] == ["net_matte.npy"]


def test_unknown_files_are_misses_not_skipped(other_set, tmp_path):
    names = ["net_input.npy", "net_matte.npy"]
    odd = _subset(other_set, tmp_path / "odd", names, {"mystery_output.npy": {"shape": [1]}})
    rows = run_verify("modnet", odd, 7)
    assert [r.output for r in rows if not r.ok] == ["mystery_output.npy"]
