"""`lihq verify modnet`: our MODNet against a vector set of upstream outputs (docs/architecture.md §7).

The set's own `vectors.json` drives the run, so other sets of the same schema (other seeds, sizes,
more cases) work unchanged. Cases are found by file-name suffix; `<P>` is any prefix (`net_`,
`pipeline_`, `pipeline_b_` ...):

- network case: `<P>input.npy` (normalised NCHW float32) -> `<P>matte.npy` (`inference=True`),
  `<P>pred_semantic_train_mode.npy` / `<P>pred_detail_train_mode.npy` (`inference=False`);
- pipeline case: `<P>image_rgb_uint8.npy` (HWC uint8 RGB) through the runner's upstream pipeline ->
  `<P>net_input_f16.npy`, `<P>matte_netres.npy`, `<P>matte.npy`, `<P>matte_uint8.npy`; when
  `_meta[<P> without its trailing "_">]` gives `im_rh` / `im_rw` (and optionally `ref_size`), the
  network size is checked too.

Tolerances are the vectors README's (float mattes 1e-4; uint8 mattes |diff| <= 1 on at most 0.5% of
pixels; the float16 debug input 1e-3); `_meta.tolerances` ({suffix: value}) overrides them. A file the
verifier does not understand is reported as a miss, never skipped silently. The weights are
synthesized from the seed (the set's own fill rule) in the official layout and loaded through the real loader;
when the set ships `manifests/weights_fingerprints.json` for this seed, the loaded dict is checked against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lihq.errors import InvalidInput
from lihq.verify import VerifyRow, find_vector_file, synthesize_for
from lihq.weights.loaders import load_state_dict
from lihq.weights.synth import state_dict_fingerprint
from services.modnet.runner import ModnetConfig, ModnetRunner, network_size, to_uint8

NET_INPUT = "input.npy"
PIPE_INPUT = "image_rgb_uint8.npy"
NET_OUTPUTS = {"matte.npy": 2, "pred_semantic_train_mode.npy": 0, "pred_detail_train_mode.npy": 1}
PIPE_OUTPUTS = ("net_input_f16.npy", "matte_netres.npy", "matte.npy", "matte_uint8.npy")
TOLERANCES = {
    "float": 1e-4,
    "net_input_f16.npy": 1e-3,
    "uint8_max": 1.0,
    "uint8_fraction": 0.005,
}
MANIFEST = "modnet/manifests/modnet_photographic_portrait_matting.json"


@dataclass(frozen=True)
class Case:
    kind: str  # "net" | "pipeline"
    prefix: str
    input: str
    outputs: tuple[str, ...]


def find_cases(files: list[str]) -> tuple[list[Case], list[str]]:
    """Cases from the `.npy` names of a set; returns (cases, files no case accounts for)."""
    cases: list[Case] = []
    used: set[str] = set()
    for name in sorted(files):
        if name.endswith(PIPE_INPUT):
            prefix, kind, outs = name[: -len(PIPE_INPUT)], "pipeline", PIPE_OUTPUTS
        elif name.endswith(NET_INPUT):
            prefix, kind, outs = name[: -len(NET_INPUT)], "net", tuple(NET_OUTPUTS)
        else:
            continue
        present = tuple(prefix + o for o in outs if prefix + o in files)
        cases.append(Case(kind, prefix, name, present))
        used |= {name, *present}
    return cases, sorted(set(files) - used)


def _miss(case: str, output: str) -> VerifyRow:
    return VerifyRow(case, output, float("inf"), 0.0)


def _load(vectors: Path, name: str, meta: dict[str, Any]) -> np.ndarray:
    arr = np.load(vectors / name)
    want = meta.get(name, {}).get("shape")
    if want is not None and list(arr.shape) != list(want):
        raise InvalidInput(f"{name}: shape {list(arr.shape)} differs from vectors.json's {want}")
    return arr


def _compare(
    case: str, name: str, suffix: str, got: np.ndarray, want: np.ndarray, tol: dict[str, float]
) -> list[VerifyRow]:
    """Rows for one output; `suffix` (the name without the case prefix) selects the tolerance."""
    if got.shape != want.shape:
        return [VerifyRow(case, f"{name} shape {list(got.shape)} != {list(want.shape)}", float("inf"), 0.0)]
    if suffix.endswith("uint8.npy"):
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        return [
            VerifyRow(case, f"{name} max |diff|", float(diff.max(initial=0)), tol["uint8_max"]),
            VerifyRow(case, f"{name} fraction differing", float((diff > 0).mean()), tol["uint8_fraction"]),
        ]
    err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
    return [VerifyRow(case, name, err, float(tol.get(suffix, tol["float"])))]


def _net_case(runner: ModnetRunner, vectors: Path, c: Case, meta: dict, tol: dict) -> list[VerifyRow]:
    x = torch.from_numpy(_load(vectors, c.input, meta).astype(np.float32))
    rows: list[VerifyRow] = []
    infer = runner.forward(x, inference=True)
    train = None
    for name in c.outputs:
        index = NET_OUTPUTS[name[len(c.prefix) :]]
        if index != 2 and train is None:
            train = runner.forward(x, inference=False)
        got = (infer if index == 2 else train)[index]  # type: ignore[index]
        suffix = name[len(c.prefix) :]
        rows += _compare(
            c.prefix.rstrip("_") or c.kind, name, suffix, got.numpy(), _load(vectors, name, meta), tol
        )
    return rows


def _pipeline_case(runner: ModnetRunner, vectors: Path, c: Case, meta: dict, tol: dict) -> list[VerifyRow]:
    image = _load(vectors, c.input, meta)
    frames = image[None]
    h, w = image.shape[:2]
    label = c.prefix.rstrip("_") or c.kind
    case_meta = meta.get("_meta", {}).get(c.prefix.rstrip("_"), {})
    rows: list[VerifyRow] = []
    ref_size = int(case_meta.get("ref_size", runner.cfg.ref_size))
    if ref_size != runner.cfg.ref_size:
        runner = ModnetRunner(runner.model, replace(runner.cfg, ref_size=ref_size), runner.model_id)
    size = runner.check_frames(frames)
    if "im_rh" in case_meta:
        want = (int(case_meta["im_rh"]), int(case_meta["im_rw"]))
        got_size = network_size(h, w, ref_size)
        err = float(max(abs(a - b) for a, b in zip(got_size, want, strict=True)))
        rows.append(VerifyRow(label, f"network size {got_size} vs {want}", err, 0.0))
    x = runner.preprocess(frames, size)
    matte = runner.matte(frames)  # the service's path (uint8 = its truncation, as matte_uint8 does)
    results = {
        "net_input_f16.npy": x.cpu().numpy().astype(np.float16),
        "matte_netres.npy": runner.forward(x, inference=True)[2].numpy(),
        "matte.npy": matte[:, None],
        "matte_uint8.npy": to_uint8(torch.from_numpy(matte)).numpy()[0],
    }
    for name in c.outputs:
        suffix = name[len(c.prefix) :]
        rows += _compare(label, name, suffix, results[suffix], _load(vectors, name, meta), tol)
    return rows


def _fingerprint_row(path: Path, seed: int, vectors: Path) -> list[VerifyRow]:
    table = find_vector_file(vectors, "manifests/weights_fingerprints.json", levels=1)
    if table is None:
        return []
    entry = json.loads(table.read_text()).get("fingerprints", {}).get(f"{MANIFEST}@seed{seed}")
    if entry is None:
        return []
    got = state_dict_fingerprint(load_state_dict(path, strip_prefix=None))
    return [VerifyRow("weights", f"seed {seed} fingerprint", float(got != entry["sha256"]), 0.0)]


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Synthesize seed-`seed` weights into `workdir`, load them for real, compare every case of `vectors`."""
    index = vectors / "vectors.json"
    if not index.is_file():
        raise InvalidInput(f"{vectors}: no vectors.json (not a MODNet vector set)")
    meta = json.loads(index.read_text())
    tol = {**TOLERANCES, **meta.get("_meta", {}).get("tolerances", {})}
    files = [k for k in meta if k.endswith(".npy")]
    cases, unknown = find_cases(files)
    path = synthesize_for("modnet", seed, workdir, vectors)[0]
    rows = _fingerprint_row(path, seed, vectors)
    runner = ModnetRunner.from_checkpoint(path, ModnetConfig(device="cpu", precision="fp32", batch_size=1))
    for c in cases:
        rows += (_net_case if c.kind == "net" else _pipeline_case)(runner, vectors, c, meta, tol)
    rows += [_miss("unrecognised", name) for name in unknown]
    return rows
