"""Precision: the request enum's one mapping, and reduced precision checked against the vectors.

`from_proto(value, default)` turns a request's `lihq.v1.Precision` into the runners' name ("fp32",
"fp16", "bf16"): PRECISION_UNSPECIFIED is the deployment's default, anything else unknown is
InvalidInput (INVALID_ARGUMENT) naming `precision`. Every stage's servicer reads it through here.

Reduced precision checked against the conformance vectors (`lihq verify MODEL --precision bf16`):

A verifier (`services/<model>/verify*.py`) runs every network of a vector set in fp32 and grades each
output with its fp32 tolerance. `run_verify_at(model, vectors, seed, precision)` runs the same
verifier with the whole computation under autocast at `precision` (CPU and, when present, CUDA), so
every convolution and matrix product runs in bf16 / fp16 exactly as a runner configured with that
precision runs them, and grades each output against the tolerance MEASURED for that precision
(TOLERANCES below; how they were measured: bench/README.md, "Precision"). An output without a
measured tolerance keeps its fp32 one. fp32 is never touched: `lihq verify` without --precision
runs the verifier as before.

The tolerances are the largest error seen over the vector set on CPU (torch 2.11, AMD EPYC), times 2,
rounded up to one significant digit: a bound from measurement, with room for the GPU's different
kernels but not for a real regression (which moves errors by orders of magnitude).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from lihq.errors import InvalidInput
from lihq.torchutil import PRECISIONS, check_precision
from lihq.v1 import common_pb2

# lihq.v1.Precision -> the runners' precision name (UNSPECIFIED: the caller's default)
_FROM_PROTO = {
    common_pb2.PRECISION_FP32: "fp32",
    common_pb2.PRECISION_FP16: "fp16",
    common_pb2.PRECISION_BF16: "bf16",
}


def from_proto(value: int, default: str | None) -> str | None:
    """The precision a request asks for: its enum's name, `default` when unspecified (None: the
    caller decides later). An unknown value is InvalidInput naming the field."""
    if value == common_pb2.PRECISION_UNSPECIFIED:
        return None if default is None else check_precision(default)
    name = _FROM_PROTO.get(value)
    if name is None:
        known = ", ".join(common_pb2.Precision.Name(v) for v in common_pb2.Precision.values())
        raise InvalidInput(f"precision {value}: unknown value; expected one of {known}")
    return name


# model -> precision -> output name (VerifyRow.output) -> tolerance (same kind as the fp32 row's)
TOLERANCES: dict[str, dict[str, dict[str, float]]] = {
    "fomm": {
        "bf16": {
            "adapt_movement_scale": 0.007,
            "deformation": 0.005,
            "deformed": 0.4,
            "driving_initial_hull_area": 0.003,
            "kp jacobian": 0.02,
            "kp value": 0.009,
            "mask": 0.009,
            "norm_jacobian": 0.02,
            "norm_value": 0.008,
            "occlusion_map": 0.02,
            "prediction": 0.03,
            "prediction (batched)": 0.03,
            "source_hull_area": 0.02,
            "sparse_deformed": 0.4,
        }
    },
    "gfpgan": {
        "bf16": {
            "out_rgb_128": 0.6,
            "out_rgb_16": 0.2,
            "out_rgb_32": 0.3,
            "out_rgb_64": 0.5,
            "out_rgb_8": 0.09,
            "output (max|d| / max|ref|)": 0.3,
            "restored_face_bgr_uint8 (px differing)": 0.2,
            "style_code": 0.07,
        }
    },
    "modnet": {
        "bf16": {
            "net_matte.npy": 0.2,
            "net_pred_detail_train_mode.npy": 0.09,
            "net_pred_semantic_train_mode.npy": 0.04,
            "pipeline_matte.npy": 0.2,
            "pipeline_matte_netres.npy": 0.2,
            "pipeline_matte_uint8.npy fraction differing": 1.0,
            "pipeline_matte_uint8.npy max |diff|": 40.0,
        },
        "fp16": {
            "net_matte.npy": 0.02,
            "net_pred_detail_train_mode.npy": 0.02,
            "net_pred_semantic_train_mode.npy": 0.004,
            "pipeline_matte.npy": 0.03,
            "pipeline_matte_netres.npy": 0.04,
            "pipeline_matte_uint8.npy fraction differing": 0.6,
            "pipeline_matte_uint8.npy max |diff|": 6.0,
        },
    },
    "qvi": {
        "bf16": {
            "F10": 0.05,
            "F12": 0.05,
            "F1t": 0.02,
            "F21": 0.04,
            "F23": 0.04,
            "F2t": 0.02,
            "Ft1": 0.06,
            "Ft1 (mean)": 0.003,
            "Ft1r": 0.04,
            "Ft2": 0.06,
            "Ft2 (mean)": 0.002,
            "Ft2r": 0.03,
            "I1t": 0.003,
            "I1t (mean)": 8e-05,
            "I1tf": 0.002,
            "I1tf (mean)": 8e-05,
            "I2t": 0.003,
            "I2t (mean)": 7e-05,
            "I2tf": 0.002,
            "I2tf (mean)": 7e-05,
            "M": 0.002,
            "M (mean)": 0.0003,
            "flow": 0.03,
            "norm1": 2.0,
            "norm1 (mean)": 0.009,
            "norm2": 2.0,
            "norm2 (mean)": 0.009,
            "out": 0.003,
            "out (mean)": 0.0002,
            "unet_out": 0.008,
            "unet_out (mean)": 0.0006,
        },
        "fp16": {
            "F10": 0.005,
            "F12": 0.006,
            "F1t": 0.002,
            "F21": 0.006,
            "F23": 0.006,
            "F2t": 0.002,
            "Ft1": 0.05,
            "Ft1 (mean)": 0.0003,
            "Ft1r": 0.02,
            "Ft2": 0.03,
            "Ft2 (mean)": 0.0003,
            "Ft2r": 0.02,
            "I1t": 0.002,
            "I2t": 0.002,
            "M (mean)": 5e-05,
            "flow": 0.004,
            "norm1": 0.8,
            "norm1 (mean)": 0.0007,
            "norm2": 0.8,
            "norm2 (mean)": 0.0007,
            "out": 0.0006,
            "unet_out": 0.002,
            "unet_out (mean)": 7e-05,
        },
    },
    "s3fd": {
        "bf16": {
            "cls1": 0.004,
            "cls2": 0.003,
            "cls3": 0.003,
            "cls4": 0.08,
            "cls5": 0.04,
            "cls6": 0.009,
            "detections via full NMS path": 2.0,
            "detections_x1y1x2y2": 2.0,
            "reg1": 0.004,
            "reg2": 0.003,
            "reg3": 0.003,
            "reg4": 0.09,
            "reg5": 0.04,
            "reg6": 0.02,
        },
        "fp16": {
            "cls1": 0.4,
            "cls2": 0.0004,
            "cls3": 0.0003,
            "cls4": 0.02,
            "cls5": 0.004,
            "cls6": 0.002,
            "reg1": 0.5,
            "reg2": 0.0004,
            "reg3": 0.0004,
            "reg4": 0.02,
            "reg5": 0.005,
            "reg6": 0.002,
        },
    },
    "wav2lip": {
        "bf16": {
            "output": 0.2,
            "pasted_frames_bgr_u8 (runner) max |diff|": 20.0,
            "pasted_frames_bgr_u8 (runner) share off": 0.5,
            "pred_bgr_u8 max |diff|": 30.0,
            "pred_bgr_u8 share off": 1.0,
        },
        "fp16": {
            "output": 0.02,
            "pasted_frames_bgr_u8 (runner) max |diff|": 4.0,
            "pasted_frames_bgr_u8 (runner) share off": 0.08,
            "pred_bgr_u8 max |diff|": 4.0,
            "pred_bgr_u8 share off": 0.3,
        },
    },
}


@contextlib.contextmanager
def autocast_everywhere(precision: str) -> Iterator[None]:
    """Autocast at `precision` on the CPU and on CUDA (when available) for the whole block."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        yield
        return
    dtype = PRECISIONS[precision]
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", dtype=dtype))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", dtype=dtype))
        yield


def tolerance_for(model: str, precision: str, output: str, fp32_tol: float) -> float:
    """The measured tolerance of `output` at `precision` (never below the fp32 one)."""
    measured = TOLERANCES.get(model, {}).get(precision, {}).get(output)
    return fp32_tol if measured is None else max(fp32_tol, measured)


def bound(measured: float, fp32_tol: float) -> float:
    """A tolerance from a measured error: 2x, rounded up to one significant digit (>= the fp32 one)."""
    if measured <= fp32_tol:
        return fp32_tol
    x = 2 * measured
    exp = math.floor(math.log10(x))
    return float(f"{math.ceil(x / 10**exp) * 10**exp:.1g}")
