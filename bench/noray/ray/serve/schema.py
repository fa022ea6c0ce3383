"""`ServeDeploySchema.model_validate(raw)`: the parts of a Serve config `lihq host` reads.

Checks what plainhost relies on (applications with a name and an import_path; args a mapping) and
keeps the rest as plain attributes. Serve's own schema (pydantic) validates far more; configs are
checked with it in CI, where Ray is installed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class ServeDeploySchema(SimpleNamespace):
    @classmethod
    def model_validate(cls, raw: dict[str, Any]) -> ServeDeploySchema:
        apps = []
        for i, a in enumerate(raw.get("applications") or []):
            if not isinstance(a, dict) or not a.get("name") or not a.get("import_path"):
                raise ValueError(f"applications[{i}]: needs a name and an import_path")
            if not isinstance(a.get("args") or {}, dict):
                raise ValueError(f"applications[{i}].args: expected a mapping")
            apps.append(
                SimpleNamespace(
                    name=a["name"],
                    import_path=a["import_path"],
                    args=dict(a.get("args") or {}),
                    route_prefix=a.get("route_prefix"),
                    deployments=a.get("deployments") or [],
                )
            )
        grpc = SimpleNamespace(**(raw.get("grpc_options") or {}))
        return cls(applications=apps, grpc_options=grpc, http_options=raw.get("http_options"))
