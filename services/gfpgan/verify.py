"""`lihq verify gfpgan --vectors DIR`: GFPGANv1Clean against a conformance vector set.

Driven by the set's own `vectors.json` (file name -> shape, dtype, sha256): every file is checked
against its recorded sha256, grouped into cases by name, and graded with the README's tolerances:
- `input_face_bgr_uint8<case>.npy`: the aligned 512x512 BGR face fed to the net, converted as
  GFPGANer does (through our batched conversion, services/gfpgan/tensors.py);
- `output_f32<case>.npy` or its row slices `output_f32_rows<a>_<b><case>.npy` (joined along H):
  max |diff| <= 2e-4 * max |reference|   (rtol row);
- `style_code<case>.npy` (final_linear's output), `out_rgb_<size><case>.npy` (toRGB side outputs):
  max |diff| <= 1e-4                        (atol rows);
- `restored_face_bgr_uint8<case>.npy` (tensor2img of the output): >= 99 % identical pixels
  (the row reports the fraction that differs, tolerance 0.01);
- float16 convenience copies (`input_f16`, `output_f16`) are not graded.
The checkpoint is synthesized from `seed` in the official layout (`gfpgan-1.4`: `params_ema`),
filled by the set's own rule (lihq.verify.vector_fill), loaded through
services/gfpgan/checkpoint.load_restorer (strict: keys and shapes of the module) and run with the stored
noise (`randomize_noise=False`), float32, on CPU. When the set ships `manifests/weights_fingerprints.json`
(beside the vectors dir) and it knows the seed, the filled weights' fingerprint is checked too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lihq.errors import FailedPrecondition, InvalidInput
from lihq.verify import VerifyRow, find_vector_file, synthesize_for
from lihq.weights import load_state_dict
from lihq.weights.synth import state_dict_fingerprint
from services.gfpgan.checkpoint import load_restorer
from services.gfpgan.tensors import restorer_lut, to_bgr_uint8, to_tensor

log = logging.getLogger("lihq.gfpgan.verify")
ENTRY = "gfpgan-1.4"
OUTPUT_RTOL = 2e-4
SIDE_ATOL = 1e-4
RESTORED_MAX_DIFF_FRACTION = 0.01
_PATTERNS = (
    ("input", re.compile(r"input_face_bgr_uint8(?P<case>.*)\.npy$")),
    ("rows", re.compile(r"output_f32_rows(?P<a>\d+)_(?P<b>\d+)(?P<case>.*)\.npy$")),
    ("output", re.compile(r"output_f32(?P<case>.*)\.npy$")),
    ("style", re.compile(r"style_code(?P<case>.*)\.npy$")),
    ("rgb", re.compile(r"out_rgb_(?P<size>\d+)(?P<case>.*)\.npy$")),
    ("restored", re.compile(r"restored_face_bgr_uint8(?P<case>.*)\.npy$")),
    ("skip", re.compile(r"(input|output)_f16.*\.npy$")),
)


@dataclass
class Case:
    name: str
    input: str = ""
    rows: list[tuple[int, str]] = field(default_factory=list)
    output: str = ""
    style: str = ""
    rgb: dict[int, str] = field(default_factory=dict)
    restored: str = ""


def _check_file(path: Path, meta: dict) -> np.ndarray:
    if not path.is_file():
        raise FailedPrecondition(f"vector file {path} listed in vectors.json is missing")
    sha = meta.get("sha256")
    if sha and hashlib.sha256(path.read_bytes()).hexdigest() != sha:
        raise FailedPrecondition(f"vector file {path}: sha256 differs from vectors.json (corrupt copy?)")
    return np.load(path)


def parse_cases(spec: dict) -> dict[str, Case]:
    """Group the vector files of `vectors.json` into cases (the name suffix after the known stem)."""
    cases: dict[str, Case] = {}
    for name in sorted(spec):
        for kind, pat in _PATTERNS:
            m = pat.match(name)
            if m is None:
                continue
            if kind != "skip":
                case = cases.setdefault(m["case"], Case(m["case"].strip("_") or "face"))
                if kind == "rows":
                    case.rows.append((int(m["a"]), name))
                elif kind == "rgb":
                    case.rgb[int(m["size"])] = name
                else:
                    setattr(case, kind, name)
            break
        else:
            log.warning("vectors.json lists %s, which this verifier does not grade", name)
    missing = [c.name for c in cases.values() if not c.input]
    if missing or not cases:
        raise InvalidInput(f"vector set without input_face_bgr_uint8 for case(s) {missing or ['(none)']}")
    return cases


def _forward(net: torch.nn.Module, face: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    captured: list[torch.Tensor] = []
    handle = net.final_linear.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.no_grad():
            x = to_tensor(face[None], restorer_lut(), torch.device("cpu"))
            out, rgbs = net(x, return_rgb=True, randomize_noise=False)
    finally:
        handle.remove()
    return out.float(), [r.float() for r in rgbs], captured[0].float()  # float(): autocast (--precision)


def _grade(case: Case, vectors: Path, spec: dict, net: torch.nn.Module) -> list[VerifyRow]:
    def load(name: str) -> np.ndarray:
        return _check_file(vectors / name, spec[name])

    out, rgbs, style = _forward(net, load(case.input))
    rows: list[VerifyRow] = []
    ref = np.concatenate([load(n) for _, n in sorted(case.rows)], axis=2) if case.rows else None
    if case.output:
        ref = load(case.output)
    if ref is not None:
        err = float(np.abs(out.numpy() - ref).max() / np.abs(ref).max())
        rows.append(VerifyRow(case.name, "output (max|d| / max|ref|)", err, OUTPUT_RTOL, "rtol"))
    if case.style:
        err = float(np.abs(style.numpy() - load(case.style)).max())
        rows.append(VerifyRow(case.name, "style_code", err, SIDE_ATOL))
    by_size = {int(r.shape[-1]): r for r in rgbs}
    for size, name in sorted(case.rgb.items()):
        if size not in by_size:
            raise InvalidInput(f"{name}: the net has no {size}px side output (has {sorted(by_size)})")
        rows.append(
            VerifyRow(
                case.name,
                f"out_rgb_{size}",
                float(np.abs(by_size[size].numpy() - load(name)).max()),
                SIDE_ATOL,
            )
        )
    if case.restored:
        frac = float((to_bgr_uint8(out)[0] != load(case.restored)).any(axis=2).mean())
        rows.append(
            VerifyRow(
                case.name, "restored_face_bgr_uint8 (px differing)", frac, RESTORED_MAX_DIFF_FRACTION, "frac"
            )
        )
    return rows


def _fingerprint_row(path: Path, seed: int, vectors: Path) -> list[VerifyRow]:
    fp_file = find_vector_file(vectors, "manifests/weights_fingerprints.json", levels=1)
    if fp_file is None:
        return []
    table = json.loads(fp_file.read_text()).get("fingerprints", {})
    want = next((v["sha256"] for k, v in table.items() if "GFPGAN" in k and k.endswith(f"@seed{seed}")), None)
    if want is None:
        return []
    got = state_dict_fingerprint(load_state_dict(path, key="params_ema", strip_prefix=None))
    return [VerifyRow("weights", f"fingerprint seed {seed} (0 = match)", float(got != want), 0.0)]


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Synthesize -> load through the real loader -> run every case of `vectors` -> graded rows."""
    spec_path = vectors / "vectors.json"
    if not spec_path.is_file():
        raise InvalidInput(f"{vectors}: no vectors.json")
    spec = json.loads(spec_path.read_text())
    cases = parse_cases(spec)
    (path,) = synthesize_for(ENTRY, seed, workdir, vectors)
    rows = _fingerprint_row(path, seed, vectors)
    net = load_restorer(path, torch.device("cpu"))
    for case in cases.values():
        rows.extend(_grade(case, vectors, spec, net))
    return rows
