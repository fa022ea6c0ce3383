"""Content-addressed stage output keys (docs/architecture.md §3, §5).

A stage's output key is derived from the stage name, the model id (weights sha256 or
`synthetic:<seed>`), the parameters and the input digests, so a retry rewrites the same object and a
repeated request is a cache hit: `cache/<stage>/<digest>/<artifact>`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from lihq.storage.base import validate_key

KEY_SCHEMA = 1  # bump when the meaning of a stage's outputs changes for the same inputs


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # exact and stable across runs
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def stage_digest(stage: str, model_id: str, params: Mapping[str, Any], inputs: Sequence[str]) -> str:
    """sha256 over a canonical JSON of everything that determines the stage's output."""
    doc = {
        "schema": KEY_SCHEMA,
        "stage": stage,
        "model": model_id,
        "params": _canonical(params),
        "inputs": list(inputs),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def cache_key(stage: str, digest: str, artifact: str) -> str:
    return validate_key(f"cache/{stage}/{digest}/{artifact}")
