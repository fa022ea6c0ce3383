"""Running the `lihq` command in a subprocess from a test, isolated from the developer's setup."""

from __future__ import annotations

import os
from pathlib import Path


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a `lihq render` of its own: a fresh LIHQ_HOME, no Ray auth or usage stats,
    and no S3 store or weights dir inherited from the caller (the render uses its home's file store)."""
    env = dict(os.environ, LIHQ_HOME=str(home), LIHQ_RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    for k in [k for k in env if k.startswith("LIHQ_S3_") or k == "LIHQ_WEIGHTS_DIR"]:
        env.pop(k)
    return env
