"""`lihq verify qvi --vectors DIR --seed N`: our QVI against upstream's vectors (docs/architecture.md §7).

Driven by the set's `vectors.json` (file name -> shape/dtype/note, plus `_meta`): every entry whose name
follows the reference schema is compared, whatever its t values, sizes or frame counts:

- `out_t{t}.npy`: QVI(I0, I1, I2, I3, t), `out_linear_t{t}.npy`: QVI(None, I1, I2, None, t), with
  I0..I3 = `frames_norm.npy` (or `frames01.npy` minus the mean) [0..3];
- `inter_t{t}_{name}.npy`: intermediates of the quadratic forward at t (see nets/qvi.py `trace`);
- `comp_corr_out`, `comp_fwarp_out_img`, `comp_fwarp_out_weight`, `comp_backwarp_out`, `comp_pwc_flow`:
  component tests on their `comp_*` inputs.

Tolerances (vectors/README.md): flows 1e-4 px; exact components 1e-5; images and other intermediates
max 5e-4 and mean 1e-5. The checkpoint is synthesized from the seed in the official layout and read
through the real loader (`services.qvi.checkpoint.load_qvi`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lihq.errors import InvalidInput
from lihq.verify import VerifyRow, synthesize_for
from lihq.weights.registry import get_entry, local_path
from services.qvi.checkpoint import load_qvi
from services.qvi.nets import QVI, Flows, backwarp, correlation, forward_splat
from services.qvi.nets.qvi import MEAN

log = logging.getLogger("lihq.verify.qvi")
FLOW_TOL = 1e-4
EXACT_TOL = 1e-5
IMAGE_TOL = 5e-4
IMAGE_MEAN_TOL = 1e-5
_FLOWS = {"F10", "F12", "F21", "F23", "F1t", "F2t", "Ft1r", "Ft2r"}
_INPUTS = {
    "frames01.npy",
    "frames_norm.npy",
    "comp_corr_first.npy",
    "comp_corr_second.npy",
    "comp_fwarp_img.npy",
    "comp_fwarp_flow.npy",
    "comp_pwc_first.npy",
    "comp_pwc_second.npy",
}
_OUT = re.compile(r"^out_t(?P<t>[0-9.]+)\.npy$")
_LINEAR = re.compile(r"^out_linear_t(?P<t>[0-9.]+)\.npy$")
_INTER = re.compile(r"^inter_t(?P<t>[0-9.]+)_(?P<name>\w+)\.npy$")


class _Vectors:
    def __init__(self, root: Path) -> None:
        index = root / "vectors.json"
        if not index.is_file():
            raise InvalidInput(f"{root}: no vectors.json (not a QVI vector set)")
        self.root = root
        self.index: dict = json.loads(index.read_text())
        self.names = sorted(k for k in self.index if k.endswith(".npy"))

    def load(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.load(self.root / name)).float()


def _compare(case: str, output: str, got: torch.Tensor, ref: torch.Tensor, tol: float) -> list[VerifyRow]:
    if tuple(got.shape) != tuple(ref.shape):
        got = got[:, : ref.shape[1]] if got.shape[1] > ref.shape[1] else got.expand_as(ref)
    diff = (got.detach().float().cpu() - ref).abs()
    rows = [VerifyRow(case, output, float(diff.max()), tol)]
    if tol == IMAGE_TOL:
        rows.append(VerifyRow(case, f"{output} (mean)", float(diff.mean()), IMAGE_MEAN_TOL, "mean"))
    return rows


def _tolerance(name: str) -> float:
    return FLOW_TOL if name in _FLOWS else IMAGE_TOL


def _frames(vec: _Vectors) -> list[torch.Tensor]:
    if "frames_norm.npy" in vec.index:
        frames = vec.load("frames_norm.npy")
    else:
        frames = vec.load("frames01.npy") - torch.tensor(MEAN).view(1, 3, 1, 1)
    if frames.shape[0] < 4:
        raise InvalidInput(f"{vec.root}: frames hold {frames.shape[0]} frames, QVI cases need 4")
    return [frames[i : i + 1] for i in range(4)]


def _times(vec: _Vectors) -> dict[str, dict[str, list[str]]]:
    """{t string: {"out": [...], "linear": [...], "inter": [...]}} from the file names."""
    out: dict[str, dict[str, list[str]]] = {}
    for name in vec.names:
        for kind, pattern in (("out", _OUT), ("linear", _LINEAR), ("inter", _INTER)):
            m = pattern.match(name)
            if m:
                out.setdefault(m.group("t"), {"out": [], "linear": [], "inter": []})[kind].append(name)
                break
    return out


def _model_cases(model: QVI, vec: _Vectors) -> list[VerifyRow]:
    times = _times(vec)
    if not times:
        return []
    i0, i1, i2, i3 = _frames(vec)
    rows: list[VerifyRow] = []
    flows = model.estimate_flows(i0, i1, i2, i3)  # the flows do not depend on t: once for every case
    for ts, files in sorted(times.items()):
        t = float(ts)
        trace: dict[str, torch.Tensor] = {}
        out = model.synthesize(i1, i2, flows, t, trace=trace)
        for name in files["out"]:
            rows += _compare(f"t={ts}", "out", out, vec.load(name), IMAGE_TOL)
        for name in files["inter"]:
            part = _INTER.match(name).group("name")  # type: ignore[union-attr]
            if part not in trace:
                log.warning("%s: no intermediate called %r; not compared", name, part)
                continue
            rows += _compare(f"t={ts}", part, trace[part], vec.load(name), _tolerance(part))
        if files["linear"]:
            linear = model.synthesize(i1, i2, Flows(None, flows.f12, flows.f21, None), t)
            for name in files["linear"]:
                rows += _compare(f"linear t={ts}", "out", linear, vec.load(name), IMAGE_TOL)
    return rows


def _component_cases(model: QVI, vec: _Vectors) -> list[VerifyRow]:
    have = set(vec.names)
    ld = vec.load
    cases: list[tuple[str, set[str], Callable[[], list[VerifyRow]]]] = [
        (
            "comp_corr_out.npy",
            {"comp_corr_first.npy", "comp_corr_second.npy"},
            lambda: _compare(
                "correlation", "out", correlation(ld("comp_corr_first.npy"), ld("comp_corr_second.npy")),
                ld("comp_corr_out.npy"), EXACT_TOL,
            ),
        ),
        ("comp_fwarp_out_img.npy", {"comp_fwarp_img.npy", "comp_fwarp_flow.npy"}, lambda: _fwarp(vec, 0)),
        ("comp_fwarp_out_weight.npy", {"comp_fwarp_img.npy", "comp_fwarp_flow.npy"}, lambda: _fwarp(vec, 1)),
        (
            "comp_backwarp_out.npy",
            {"comp_fwarp_img.npy", "comp_fwarp_flow.npy"},
            lambda: _compare(
                "backwarp", "out", backwarp(ld("comp_fwarp_img.npy"), ld("comp_fwarp_flow.npy")),
                ld("comp_backwarp_out.npy"), EXACT_TOL,
            ),
        ),
        (
            "comp_pwc_flow.npy",
            {"comp_pwc_first.npy", "comp_pwc_second.npy"},
            lambda: _compare(
                "pwc", "flow", model.flownet(ld("comp_pwc_first.npy"), ld("comp_pwc_second.npy")),
                ld("comp_pwc_flow.npy"), FLOW_TOL,
            ),
        ),
    ]  # fmt: skip
    rows: list[VerifyRow] = []
    for output, inputs, run_case in cases:
        if output not in have:
            continue
        if not inputs <= have:
            raise InvalidInput(f"{vec.root}: {output} needs {sorted(inputs - have)}")
        rows += run_case()
    return rows


def _fwarp(vec: _Vectors, which: int) -> list[VerifyRow]:
    summed, weight = forward_splat(vec.load("comp_fwarp_img.npy"), vec.load("comp_fwarp_flow.npy"))
    name = ("comp_fwarp_out_img.npy", "comp_fwarp_out_weight.npy")[which]
    return _compare(
        "forward_warp", ("img", "weight")[which], (summed, weight)[which], vec.load(name), EXACT_TOL
    )


def _report_unknown(vec: _Vectors) -> None:
    comps = {"comp_corr_out.npy", "comp_fwarp_out_img.npy", "comp_fwarp_out_weight.npy"}
    comps |= {"comp_backwarp_out.npy", "comp_pwc_flow.npy"}
    for name in vec.names:
        if name in _INPUTS or name in comps or any(p.match(name) for p in (_OUT, _LINEAR, _INTER)):
            continue
        log.warning("%s: not part of the QVI vector schema; not compared", name)


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Synthesize seed weights (official layout) into `workdir`, load them, compare every case."""
    vec = _Vectors(Path(vectors))
    _report_unknown(vec)
    synthesize_for("qvi", seed, workdir, vectors)
    model = load_qvi(local_path(get_entry("qvi").files[0], workdir))
    with torch.inference_mode():
        return _component_cases(model, vec) + _model_cases(model, vec)
