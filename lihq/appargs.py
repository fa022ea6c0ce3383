"""Typed Serve app arguments: the one check every `*AppArgs.parse` starts with."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def checked_args(app: str, cls: type, args: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of `args`, after rejecting keys that are not fields of the dataclass `cls` (a typo in a
    Serve config must fail the deploy, not be ignored)."""
    args = dict(args or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"{app} app: unknown args {unknown}; known: {sorted(known)}")
    return args
