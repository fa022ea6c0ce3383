"""Render state in the object store (ARCHITECTURE.md §5): renders/<id>/render.json.

Everything needed to resume lives there — the request, the state, per-task results (object keys),
progress and the error — so a restarted orchestrator continues unfinished renders without recomputing
finished segments. Writes go through `put_bytes`, atomic on both stores.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from lihq.errors import NotFound
from lihq.storage.base import ObjectStore, validate_key
from orchestrator.scheduler import TaskResult
from orchestrator.spec import Background, RenderSpec

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_render_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class RenderRecord:
    render_id: str
    spec: RenderSpec
    state: str = QUEUED
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    progress: dict[str, list[int]] = field(default_factory=dict)  # stage -> [done, total]
    eta_s: float = 0.0
    output_key: str = ""
    error: str = ""
    error_code: str = ""
    error_stage: str = ""
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> outputs
    webhook_url: str = ""
    webhook: dict[str, Any] = field(default_factory=dict)  # delivery outcome: orchestrator/webhook.py

    def to_json(self) -> bytes:
        d = asdict(self)
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RenderRecord:
        d = json.loads(data)
        spec = d.pop("spec")
        spec["background"] = Background(**spec.get("background", {}))
        spec["pads"] = tuple(spec.get("pads", (0, 20, 0, 0)))
        return cls(spec=RenderSpec(**spec), **d)

    def task_results(self) -> dict[str, TaskResult]:
        return {k: TaskResult(v) for k, v in self.results.items()}


class RenderStore:
    """CRUD of render records plus the idempotency index, on any ObjectStore."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(render_id: str) -> str:
        return validate_key(f"renders/{render_id}/render.json")

    def save(self, rec: RenderRecord) -> None:
        rec.updated_at = now()
        self.store.put_bytes(self.key(rec.render_id), rec.to_json(), "application/json")

    def load(self, render_id: str) -> RenderRecord:
        try:
            return RenderRecord.from_json(self.store.get_bytes(self.key(render_id)))
        except NotFound as exc:
            raise NotFound(f"no render {render_id!r}") from exc

    def list(self) -> list[RenderRecord]:
        out = []
        for info in self.store.list("renders/"):
            if info.key.endswith("/render.json"):
                out.append(RenderRecord.from_json(self.store.get_bytes(info.key)))
        return sorted(out, key=lambda r: (r.created_at, r.render_id))

    def _idem_key(self, idempotency_key: str) -> str:
        return f"renders/_idempotency/{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json"

    def lookup_idempotent(self, idempotency_key: str) -> list[str] | None:
        if not idempotency_key:
            return None
        try:
            return json.loads(self.store.get_bytes(self._idem_key(idempotency_key)))["render_ids"]
        except NotFound:
            return None

    def remember_idempotent(self, idempotency_key: str, render_ids: list[str]) -> None:
        if idempotency_key:
            body = json.dumps({"render_ids": render_ids}).encode()
            self.store.put_bytes(self._idem_key(idempotency_key), body, "application/json")
