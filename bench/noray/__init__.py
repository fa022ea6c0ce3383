"""A stand-in for the few `ray.serve` names `lihq host` needs, for machines without Ray.

The device machine that runs bench/gpu_suite.sh has no Ray (its wheel does not fit the 64 MiB a
device call carries). `lihq host` (lihq/plainhost.py) only needs what a Serve app *is*: the class a
deployment wraps and the arguments it is bound with, and the app list of a Serve config. This
package provides exactly that under the module name `ray`, and `install()` puts it on sys.path only
when the real Ray cannot be imported (or LIHQ_BENCH_NORAY=1 forces it, as the quick suite does so
that CI exercises the path the GPU machine takes). Nothing else of Ray is provided: Serve itself
(replicas, autoscaling, the proxy) is not faked, it is simply not used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent


def install() -> bool:
    """Make `import ray` resolve to the stand-in when needed; True when it is in use."""
    forced = os.environ.get("LIHQ_BENCH_NORAY") == "1"
    if not forced:
        try:
            if importlib.util.find_spec("ray") is not None:
                return False
        except ImportError:
            pass
    if "ray" in sys.modules and not getattr(sys.modules["ray"], "NORAY", False):
        return False
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    return True
