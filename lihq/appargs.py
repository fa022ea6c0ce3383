"""Typed Serve app arguments and the base every stage deployment shares.

One config per layer. A stage's runner config (the dataclass in `services/<model>/runner.py`) holds
every runtime setting and its one default; the stage's `*AppArgs` (in its deployment.py) holds that
config as `runner`, plus only what the app itself knows: the store's bucket / prefix, where weights
are, what to preload. Serve configs keep flat `args:`: each key names a field of the AppArgs or of
its runner config (a settings dataclass listed in `nested`, e.g. tts's `tortoise`, is reached as
`tortoise_<field>`). `AppArgs.parse` routes, type-checks and validates them, so a misspelt key or a
bad value fails the deploy, not the first request.

`StageDeployment` is the base of the stage deployment classes: it sets up logging and builds the
servicer from `args.servicer_args()`; `deployment_options` is the `@serve.deployment(...)` of a stage
(GPU share, request bounds, autoscaling) with the defaults the stages share. Neither imports Ray.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from lihq.errors import LihqError

A = TypeVar("A", bound="AppArgs")
_SCALARS = (str, int, float, bool, Path, type(None))


def checked_args(app: str, cls: type, args: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of `args`, after rejecting keys that are not fields of the dataclass `cls` (a typo in a
    Serve config must fail the deploy, not be ignored)."""
    args = dict(args or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(f"{app} app: unknown args {unknown}; known: {sorted(known)}")
    return args


def _allowed(hint: Any) -> tuple[type, ...] | None:
    """The plain types a Serve arg of this type hint may hold; None: not settable from `args:`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: list[type] = []
        for part in typing.get_args(hint):
            allowed = _allowed(part)
            if allowed is None:
                return None
            out += allowed
        return tuple(out)
    if origin is tuple or hint is tuple:
        return (tuple,)
    if origin is dict or hint is dict:
        return (dict,)
    return (hint,) if hint in _SCALARS else None


def _coerce(app: str, name: str, value: Any, allowed: tuple[type, ...]) -> Any:
    """`value` as one of `allowed` (YAML gives ints for floats, lists for tuples, strings for paths)."""
    if type(value) is int and float in allowed and int not in allowed:
        value = float(value)
    elif type(value) is list and tuple in allowed:
        value = tuple(value)
    elif type(value) is str and Path in allowed and str not in allowed:
        value = Path(value)
    if not isinstance(value, allowed) or (type(value) is bool and bool not in allowed):  # a bool is no int
        names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise ValueError(f"{app} app: {name} must be {names}, got {value!r}")
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name} has no default")


@dataclasses.dataclass(frozen=True)
class AppArgs:
    """Base of a stage's typed app arguments. Subclasses set `app` and declare
    `runner: <RunnerConfig> = field(default_factory=<RunnerConfig>)` plus their app-only fields."""

    app: ClassVar[str] = "stage"
    nested: ClassVar[
        tuple[str, ...]
    ] = ()  # runner fields (dataclasses) whose fields are `<name>_<field>` args

    bucket: str | None = None
    prefix: str | None = None
    runner: Any = None

    # -- the flat `args:` table -------------------------------------------------------------------
    @classmethod
    def runner_type(cls) -> type:
        return typing.get_type_hints(cls)["runner"]

    @classmethod
    def arg_table(cls) -> dict[str, tuple[tuple[str, ...], tuple[type, ...]]]:
        """{arg name: (where it goes, allowed types)}; where: ("app", field) / ("runner", field[, sub])."""
        table: dict[str, tuple[tuple[str, ...], tuple[type, ...]]] = {}
        own = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            allowed = _allowed(own[f.name])
            if f.name != "runner" and allowed is not None:
                table[f.name] = (("app", f.name), allowed)
        rtype = cls.runner_type()
        hints = typing.get_type_hints(rtype)
        for f in dataclasses.fields(rtype):
            if f.name in cls.nested:
                sub = hints[f.name]
                sub_hints = typing.get_type_hints(sub)
                for g in dataclasses.fields(sub):
                    allowed = _allowed(sub_hints[g.name])
                    if allowed is not None:
                        table[f"{f.name}_{g.name}"] = (("runner", f.name, g.name), allowed)
                continue
            allowed = _allowed(hints[f.name])
            if allowed is not None and f.name not in table:
                table[f.name] = (("runner", f.name), allowed)
        return table

    @classmethod
    def parse(cls: type[A], args: Mapping[str, Any] | None) -> A:
        """Typed, validated args from a Serve config's `args:` (ValueError naming the bad key)."""
        args = dict(args or {})
        table = cls.arg_table()
        unknown = sorted(set(args) - set(table))
        if unknown:
            raise ValueError(f"{cls.app} app: unknown args {unknown}; known: {sorted(table)}")
        own: dict[str, Any] = {}
        runner: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for name, value in args.items():
            where, allowed = table[name]
            value = _coerce(cls.app, name, value, allowed)
            if where[0] == "app":
                own[where[1]] = value
            elif len(where) == 2:
                runner[where[1]] = value
            else:
                nested.setdefault(where[1], {})[where[2]] = value
        rtype = cls.runner_type()
        rfields = {f.name: f for f in dataclasses.fields(rtype)}
        try:
            for name, values in nested.items():
                runner[name] = dataclasses.replace(_default(rfields[name]), **values)
            parsed = cls(**own, runner=rtype(**runner))
            parsed.check()
        except LihqError as exc:  # a runner config's own validation (InvalidInput naming the field)
            raise ValueError(f"{cls.app} app: {exc.message}") from exc
        return parsed

    # -- hooks --------------------------------------------------------------------------------------
    def check(self) -> None:
        """Checks beyond the runner config's own (raise ValueError or a LihqError)."""

    def store(self) -> Any:
        from lihq.storage import open_app_store

        return open_app_store(self.bucket, self.prefix)

    def servicer_args(self) -> tuple[Any, ...]:
        """The servicer's constructor arguments (store, runner, …), built on the replica."""
        raise NotImplementedError


def deployment_options(
    name: str,
    *,
    num_cpus: float = 1,
    num_gpus: float = 0.25,
    max_ongoing: int = 4,
    max_queued: int = 64,
    max_replicas: int = 4,
    target_ongoing: int = 2,
) -> dict[str, Any]:
    """`@serve.deployment(**deployment_options(...))`: a stage's resources, bounds and autoscaling."""
    return {
        "name": name,
        "ray_actor_options": {"num_cpus": num_cpus, "num_gpus": num_gpus},
        "max_ongoing_requests": max_ongoing,
        "max_queued_requests": max_queued,
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": max_replicas,
            "target_ongoing_requests": target_ongoing,
        },
    }


class StageDeployment:
    """Base of a stage's Serve deployment class, listed before its servicer:
    `class MotionDeployment(StageDeployment, MotionServicer)`. Logging is configured, then the
    servicer is built from `args.servicer_args()` (the store and the runner, made on the replica)."""

    def __init__(self, args: AppArgs) -> None:
        from lihq import log

        log.configure()
        super().__init__(*args.servicer_args())
