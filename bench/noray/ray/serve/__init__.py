"""The decorator side of `ray.serve` that stage deployment modules use at import time.

`@serve.deployment(...)` wraps a class in a Deployment; `.options(...)` returns a copy with other
options; `.bind(*args, **kwargs)` returns an Application whose `_bound_deployment` carries the class
(`func_or_class`), the bound arguments and the options, which is what lihq/plainhost.py reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Deployment:
    func_or_class: type
    name: str
    ray_actor_options: dict[str, Any] = field(default_factory=dict)
    options_: dict[str, Any] = field(default_factory=dict)
    init_args: tuple[Any, ...] = ()
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def options(self, **kw: Any) -> Deployment:
        actor = kw.pop("ray_actor_options", self.ray_actor_options)
        return replace(self, ray_actor_options=dict(actor or {}), options_={**self.options_, **kw})

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        return Application(replace(self, init_args=args, init_kwargs=kwargs))


@dataclass(frozen=True)
class Application:
    _bound_deployment: Deployment


def deployment(_cls: type | None = None, **kw: Any) -> Any:
    def wrap(cls: type) -> Deployment:
        actor = kw.get("ray_actor_options") or {}
        rest = {k: v for k, v in kw.items() if k not in ("name", "ray_actor_options")}
        return Deployment(cls, kw.get("name", cls.__name__), dict(actor), rest)

    return wrap(_cls) if _cls is not None else wrap
