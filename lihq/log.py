"""Structured logging: one JSON object per line, carrying render_id / segment / stage when known.

`stage_logger("media", render_id=..., segment=...)` returns a LoggerAdapter whose fields land on
every line. `configure()` installs the JSON formatter once (idempotent); Ray Serve replicas call it
in their constructors so their lines are structured too.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = ("render_id", "segment", "stage", "trace_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for f in _FIELDS:
            v = getattr(record, f, None)
            if v not in (None, ""):
                out[f] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_configured = False


def configure(level: int = logging.INFO) -> None:
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("lihq")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    _configured = True


class _Adapter(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def stage_logger(stage: str, **fields: Any) -> logging.LoggerAdapter:
    return _Adapter(logging.getLogger(f"lihq.{stage}"), {"stage": stage, **fields})
