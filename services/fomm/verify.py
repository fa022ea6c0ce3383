"""`lihq verify fomm --vectors DIR --seed N`: our FOMM against upstream's outputs (docs/architecture.md §7).

A checkpoint in the official layout (legacy-pickle `vox-cpk.pth.tar`) is synthesized from the seed,
loaded through the real loader into a `FommRunner`, and every case of the vector set is run:

- `inputs.npz` (source_u8, driving_u8 with N frames) -> PrepareMotion globals (initial frame 0),
  compared with `kp.npz` (source keypoints, hull areas, adapt_movement_scale);
- each `frame_XX.npz` -> driving / normalised keypoints (kp.npz rows) and the generator's
  intermediates, one frame per forward as upstream's make_animation (relative, adapt scale);
- the same frames in one batch through the production path (`prediction (batched)`);
- `resize.npz` -> demo.py's skimage resize.

Frame counts come from the set's own files, so other sets of this schema (other seeds, inputs,
counts) run as they are. Tolerances: the vector README's table.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lihq.errors import InvalidInput
from lihq.verify import VerifyRow, synthesize_for
from services.fomm import keypoints as motion
from services.fomm.keypoints import Mode, MotionGlobals
from services.fomm.runner import AnimateSpec, FommRunner, FommRunnerConfig

ATOL = {
    "value": 1e-5,
    "jacobian": 1e-5,
    "norm_value": 1e-5,
    "norm_jacobian": 1e-5,
    "mask": 1e-5,
    "occlusion_map": 1e-5,
    "deformation": 1e-5,
    "prediction": 1e-5,
    "sparse_deformed": 2e-4,
    "deformed": 2e-4,
    "resize": 1e-6,  # float64, as demo.py
}
RTOL_SCALARS = 1e-5  # adapt_movement_scale and the hull areas
SPEC = AnimateSpec(Mode.RELATIVE, adapt_scale=True)  # what the vectors were made with
_FRAME = re.compile(r"^frame_(\d+)\.npz$")


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InvalidInput(f"vector set: {path} is missing")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _abs_row(case: str, name: str, ours: np.ndarray, ref: np.ndarray, tol: float) -> VerifyRow:
    ours = np.asarray(ours, dtype=np.float64).reshape(np.shape(ref))
    return VerifyRow(case, name, float(np.max(np.abs(ours - ref))), tol)


def _rel_row(case: str, name: str, ours: float, ref: float) -> VerifyRow:
    return VerifyRow(case, name, abs(ours - float(ref)) / max(abs(float(ref)), 1e-30), RTOL_SCALARS, "rtol")


def frame_files(vectors: Path) -> dict[int, Path]:
    """{frame index: frame_XX.npz} present in the set."""
    found = {int(m.group(1)): p for p in vectors.iterdir() if (m := _FRAME.match(p.name))}
    if not found:
        raise InvalidInput(f"vector set {vectors}: no frame_XX.npz files")
    return dict(sorted(found.items()))


def globals_rows(g: MotionGlobals, kp: dict[str, np.ndarray]) -> list[VerifyRow]:
    rows = [
        _abs_row("source", "kp value", g.source_value, kp["source_value"], ATOL["value"]),
        _rel_row("source", "source_hull_area", g.source_hull_area, kp["source_hull_area"]),
        _rel_row("source", "driving_initial_hull_area", g.initial_hull_area, kp["driving_initial_hull_area"]),
        _rel_row("source", "adapt_movement_scale", g.adapt_movement_scale, kp["adapt_movement_scale"]),
    ]
    if "source_jacobian" in kp and g.source_jacobian is not None:
        rows.insert(
            1, _abs_row("source", "kp jacobian", g.source_jacobian, kp["source_jacobian"], ATOL["jacobian"])
        )
    return rows


def frame_rows(
    runner: FommRunner, inputs: dict[str, np.ndarray], g: MotionGlobals, kp: dict, frames: dict[int, Path]
) -> list[VerifyRow]:
    """Every intermediate of every frame, one frame per forward (batch_size 1 runner)."""
    rows: list[VerifyRow] = []
    driving = inputs["driving_u8"]
    outputs = runner.iter_outputs(inputs["source_u8"], driving, g, SPEC, with_deformed=True)
    for s, _, kd, kn, out in outputs:
        if s not in frames:
            continue
        ref, case = _load(frames[s]), f"frame_{s:02d}"
        pairs = {
            "kp value": (kd.value, kp["driving_value"][s], "value"),
            "kp jacobian": (kd.jacobian, kp["driving_jacobian"][s], "jacobian"),
            "norm_value": (kn.value, kp["norm_value"][s], "norm_value"),
            "norm_jacobian": (kn.jacobian, kp["norm_jacobian"][s], "norm_jacobian"),
            "mask": (out.motion.mask, ref.get("mask"), "mask"),
            "occlusion_map": (out.motion.occlusion_map, ref.get("occlusion_map"), "occlusion_map"),
            "deformation": (out.motion.deformation, ref.get("deformation"), "deformation"),
            "sparse_deformed": (out.motion.sparse_deformed, ref.get("sparse_deformed"), "sparse_deformed"),
            "deformed": (out.deformed, ref.get("deformed"), "deformed"),
            "prediction": (out.prediction.permute(0, 2, 3, 1), ref.get("prediction"), "prediction"),
        }
        for name, (ours, want, tol) in pairs.items():
            if want is not None and ours is not None:
                rows.append(_abs_row(case, name, ours.float().cpu().numpy(), want, ATOL[tol]))
    return rows


def batched_row(
    path: Path, inputs: dict[str, np.ndarray], g: MotionGlobals, frames: dict[int, Path]
) -> VerifyRow:
    """All frames in one batch through the production path (`animate_float`)."""
    n = len(inputs["driving_u8"])
    cfg = FommRunnerConfig(device="cpu", batch_size=max(2, n), resize_inputs=True)
    runner = FommRunner(cfg, paths={"vox": path})
    preds = runner.animate_float(inputs["source_u8"], inputs["driving_u8"], g, SPEC)
    err = max(float(np.max(np.abs(preds[i] - _load(p)["prediction"]))) for i, p in frames.items() if i < n)
    return VerifyRow(f"frames 0..{n - 1}", "prediction (batched)", err, ATOL["prediction"])


def resize_row(vectors: Path) -> list[VerifyRow]:
    path = vectors / "resize.npz"
    if not path.is_file():
        return []
    d = _load(path)
    ours = motion.resize_like_demo(d["input_u8"], d["output_f64"].shape[0])
    return [_abs_row("resize", "output_f64", ours, d["output_f64"], ATOL["resize"])]


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Synthesize seed weights in the official layout under `workdir`, load them, run the set."""
    vectors = Path(vectors)
    path = synthesize_for("fomm", seed, workdir, vectors)[0]
    inputs, kp = _load(vectors / "inputs.npz"), _load(vectors / "kp.npz")
    frames = frame_files(vectors)
    cfg = FommRunnerConfig(device="cpu", batch_size=1, resize_inputs=True)  # demo.py resizes any size
    runner = FommRunner(cfg, paths={"vox": path})
    g = runner.prepare(inputs["source_u8"], inputs["driving_u8"], "vox")
    rows = globals_rows(g, kp)
    rows += frame_rows(runner, inputs, g, kp, frames)
    rows.append(batched_row(path, inputs, g, frames))
    return rows + resize_row(vectors)
