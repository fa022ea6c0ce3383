"""Device and precision handling shared by every model runner (runners own device/precision/batching).

`resolve_device("auto")` picks CUDA when present (and turns on cuDNN autotuning for it: every stage
runs fixed shapes per deployment, so the first batch's search pays off; LIHQ_CUDNN_BENCHMARK=0 turns
it off); `autocast(device, "bf16")` is a no-op for fp32 and on devices without the dtype's support;
`maybe_compile(module, enabled)` wraps a network in torch.compile behind a runner flag (backend from
LIHQ_TORCH_COMPILE_BACKEND, default inductor); `batched(n, size)` yields index ranges for batch loops.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from lihq.errors import InvalidInput

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    if name in ("", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InvalidInput(f"device {name!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {name!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda":
        prepare_cuda()
    return dev


def prepare_cuda() -> None:
    """cuDNN autotuning on (unless LIHQ_CUDNN_BENCHMARK=0). TF32 stays as each runner sets it."""
    if os.environ.get("LIHQ_CUDNN_BENCHMARK", "1") != "0":
        torch.backends.cudnn.benchmark = True


def maybe_compile(module: Any, enabled: bool) -> Any:
    """`torch.compile(module, dynamic=False)` when enabled (static shapes: one graph per batch
    shape), else the module itself. LIHQ_TORCH_COMPILE_BACKEND picks the backend (default inductor;
    the CPU tests use aot_eager, which traces the same graph without generating code)."""
    if not enabled:
        return module
    backend = os.environ.get("LIHQ_TORCH_COMPILE_BACKEND", "inductor")
    return torch.compile(module, dynamic=False, backend=backend)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass; fp32 (and fp16 on CPU) run as plain fp32."""
    check_precision(precision)
    if precision == "fp32" or (device.type == "cpu" and precision == "fp16"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def batched(n: int, size: int) -> Iterator[tuple[int, int]]:
    if size <= 0:
        raise InvalidInput(f"batch size {size}: must be > 0")
    for s in range(0, n, size):
        yield s, min(n, s + size)
