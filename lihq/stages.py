"""Where each stage lives: the gRPC address + Serve application name the orchestrator calls.

docs/architecture.md §4: the orchestrator calls stages over gRPC, so any process that implements a
capability's proto can replace a stage. This module is the one place that says which process that
is, per stage, so swapping a model means editing one stage's entry and nothing else.

Two equivalent sources (env wins nothing over YAML: pick one per process):

Environment (what the k8s ConfigMap `lihq-stages` sets)
    LIHQ_STAGES_ADDRESS                 default address for every stage (Serve's gRPC proxy),
                                        default 127.0.0.1:9000
    LIHQ_STAGE_<NAME>_ADDRESS           this stage elsewhere (another proxy, a plain gRPC server)
    LIHQ_STAGE_<NAME>_APPLICATION       the `application` metadata sent with its calls
                                        (default: the stage name, = the Serve app / services folder;
                                        a plain gRPC server ignores it)
    <NAME> is the stage in upper case: TTS, FOMM, WAV2LIP, GFPGAN, QVI, MODNET, MEDIA, ORCHESTRATOR.

YAML
    default_address: lihq-serve:9000
    stages:
      media: {address: media-alt.tools.svc:50051, application: media}
      wav2lip: {application: wav2lip-gan}      # another Serve app on the same proxy

Unknown stage names and unknown keys are refused (a typo must not silently keep the old stage).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from lihq.errors import InvalidInput
from lihq.grpc.client import StageEndpoint, open_channel

DEFAULT_ADDRESS = "127.0.0.1:9000"


@dataclass(frozen=True)
class Stage:
    """One stage: a Serve app (= services/<folder>) implementing one gRPC service.

    `runs` are the task kinds of orchestrator/plan.py (`Task.stage`) this app executes."""

    name: str
    service: str  # full gRPC service name
    proto_module: str  # generated module with add_<Service>Servicer_to_server and <Service>Stub
    runs: tuple[str, ...] = ()

    @property
    def service_name(self) -> str:
        return self.service.rsplit(".", 1)[1]

    def stub(self) -> type:
        """The generated client stub class of the service."""
        return getattr(importlib.import_module(self.proto_module), f"{self.service_name}Stub")


# THE stage table: everything that lists stages reads it (plan, executor, deployment, hosts, CLI)
REGISTRY: Mapping[str, Stage] = MappingProxyType(
    {
        s.name: s
        for s in (
            Stage("tts", "lihq.v1.SpeechService", "lihq.v1.speech_pb2_grpc", ("tts",)),
            Stage("fomm", "lihq.v1.MotionService", "lihq.v1.motion_pb2_grpc", ("fomm",)),
            Stage("wav2lip", "lihq.v1.LipSyncService", "lihq.v1.lipsync_pb2_grpc", ("wav2lip",)),
            Stage("gfpgan", "lihq.v1.FaceRestorationService", "lihq.v1.restoration_pb2_grpc", ("gfpgan",)),
            Stage("qvi", "lihq.v1.InterpolationService", "lihq.v1.interpolation_pb2_grpc", ("qvi",)),
            Stage("modnet", "lihq.v1.MattingService", "lihq.v1.matting_pb2_grpc", ("modnet", "composite")),
            Stage(
                "media",
                "lihq.v1.MediaService",
                "lihq.v1.media_pb2_grpc",
                ("ingest", "audio", "cut", "encode", "procedural", "face", "paste", "hls"),
            ),
            Stage("orchestrator", "lihq.v1.RenderService", "lihq.v1.render_pb2_grpc"),
        )
    }
)
# derived views
CAPABILITIES: Mapping[str, str] = MappingProxyType({n: s.service for n, s in REGISTRY.items()})
PROTO_MODULES: Mapping[str, str] = MappingProxyType({n: s.proto_module for n, s in REGISTRY.items()})
PIPELINE_APPS: tuple[str, ...] = tuple(n for n, s in REGISTRY.items() if s.runs)  # what renders call
TASK_APPS: Mapping[str, str] = MappingProxyType({k: n for n, s in REGISTRY.items() for k in s.runs})
STAGES: tuple[str, ...] = tuple(CAPABILITIES)
# the task kinds in pipeline order (the CLI's live table and summary list stages so); the same set as
# the table's `runs`, checked here so a new kind cannot be left out
TASK_ORDER: tuple[str, ...] = (
    "ingest",
    "face",
    "tts",
    "audio",
    "procedural",
    "cut",
    "fomm",
    "wav2lip",
    "gfpgan",
    "qvi",
    "modnet",
    "composite",
    "paste",
    "hls",
    "encode",
)
if set(TASK_ORDER) != set(TASK_APPS):  # pragma: no cover - a developer's mistake, caught at import
    raise RuntimeError(f"TASK_ORDER {sorted(TASK_ORDER)} != the stage table's task kinds {sorted(TASK_APPS)}")
_PREFIX = "LIHQ_STAGE_"
_FIELDS = ("ADDRESS", "APPLICATION")


def servicer_function(stage: str) -> str:
    """Import path of the function that registers `stage`'s service on a gRPC server."""
    service = CAPABILITIES[stage].rsplit(".", 1)[1]
    return f"{PROTO_MODULES[stage]}.add_{service}Servicer_to_server"


def stage_for_service(full_name: str) -> str:
    """The stage that implements the gRPC service `full_name` (e.g. 'lihq.v1.MediaService')."""
    for stage, svc in CAPABILITIES.items():
        if svc == full_name:
            return stage
    raise InvalidInput(f"no LIHQ stage implements {full_name!r}; known: {sorted(CAPABILITIES.values())}")


def _check_address(addr: str, where: str) -> str:
    addr = addr.strip()
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in addr:
        raise InvalidInput(f"{where}={addr!r}: expected host:port (e.g. lihq-serve:9000)")
    return addr


@dataclass(frozen=True)
class StageEndpoints:
    """Per-stage gRPC endpoints. `overrides` holds only the stages that differ from the default."""

    default_address: str = DEFAULT_ADDRESS
    overrides: Mapping[str, StageEndpoint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(STAGES))
        if unknown:
            raise InvalidInput(f"unknown stage(s) {unknown}; known stages: {list(STAGES)}")
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def get(self, stage: str) -> StageEndpoint:
        if stage not in STAGES:
            raise InvalidInput(f"unknown stage {stage!r}; known stages: {list(STAGES)}")
        return self.overrides.get(stage) or StageEndpoint(self.default_address, stage)

    def as_dict(self) -> dict[str, dict[str, str]]:
        out = {}
        for stage in STAGES:
            ep = self.get(stage)
            out[stage] = {"address": ep.address, "application": ep.application}
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StageEndpoints:
        e = os.environ if env is None else env
        default = _check_address(e.get("LIHQ_STAGES_ADDRESS") or DEFAULT_ADDRESS, "LIHQ_STAGES_ADDRESS")
        found: dict[str, dict[str, str]] = {}
        for name, value in e.items():
            if not name.startswith(_PREFIX):
                continue
            stage, _, what = name[len(_PREFIX) :].rpartition("_")
            if what not in _FIELDS or stage.lower() not in STAGES:
                raise InvalidInput(
                    f"{name}: expected LIHQ_STAGE_<STAGE>_ADDRESS or _APPLICATION with <STAGE> one of "
                    f"{[s.upper() for s in STAGES]}"
                )
            found.setdefault(stage.lower(), {})[what.lower()] = value
        return cls(default, {s: _endpoint(s, v, default, f"{_PREFIX}{s.upper()}") for s, v in found.items()})

    @classmethod
    def from_yaml(cls, source: str | Path) -> StageEndpoints:
        """Parse a YAML file path (Path) or YAML text (str)."""
        text = source.read_text() if isinstance(source, Path) else source
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InvalidInput(f"stage endpoints YAML is invalid: {exc}") from exc
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> StageEndpoints:
        if not isinstance(raw, dict):
            raise InvalidInput("stage endpoints: expected a mapping with default_address / stages")
        extra = sorted(set(raw) - {"default_address", "stages"})
        if extra:
            raise InvalidInput(f"stage endpoints: unknown keys {extra}; known: default_address, stages")
        default = _check_address(str(raw.get("default_address") or DEFAULT_ADDRESS), "default_address")
        stages = raw.get("stages") or {}
        if not isinstance(stages, dict):
            raise InvalidInput("stage endpoints: `stages` must map stage names to {address, application}")
        return cls(default, {s: _endpoint(s, v, default, f"stages.{s}") for s, v in stages.items()})


def _endpoint(stage: str, raw: Any, default: str, where: str) -> StageEndpoint:
    if stage not in STAGES:
        raise InvalidInput(f"{where}: unknown stage {stage!r}; known stages: {list(STAGES)}")
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a mapping with address and/or application")
    extra = sorted(set(raw) - {"address", "application"})
    if extra:
        raise InvalidInput(f"{where}: unknown keys {extra}; known: address, application")
    address = _check_address(str(raw.get("address") or default), f"{where} address")
    application = str(raw.get("application") or stage)
    return StageEndpoint(address, application)


class StageCaller:
    """Call any unary stage method by name: `call("lihq.v1.MediaService/Encode", {...request JSON...})`.

    The stage serving the service comes from `CAPABILITIES`, its address and `application` metadata
    from `StageEndpoints`; requests are protobuf JSON. One channel per address, shared by threads.
    Errors come back as typed `lihq.errors` (bad op or request -> InvalidInput).
    """

    def __init__(self, endpoints: StageEndpoints, timeout_s: float = 600.0) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self._channels: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _channel(self, address: str) -> Any:

        with self._lock:
            if address not in self._channels:
                self._channels[address] = open_channel(address)
            return self._channels[address]

    @staticmethod
    def method(op: str) -> tuple[str, Any, Any, str]:
        """(stage, request class, response class, RPC path) of a unary op '<service>/<Method>'."""
        from google.protobuf import descriptor_pool, message_factory

        service, sep, method = op.partition("/")
        if not sep or not method:
            raise InvalidInput(f"op {op!r}: expected '<service>/<Method>', e.g. lihq.v1.MediaService/Encode")
        stage = stage_for_service(service)
        importlib.import_module(PROTO_MODULES[stage].removesuffix("_grpc"))
        svc = descriptor_pool.Default().FindServiceByName(service)
        m = svc.methods_by_name.get(method)
        if m is None or m.client_streaming or m.server_streaming:
            unary = sorted(x.name for x in svc.methods if not (x.client_streaming or x.server_streaming))
            raise InvalidInput(f"op {op!r}: {service} has no unary method {method!r}; unary: {unary}")
        req_cls = message_factory.GetMessageClass(m.input_type)
        resp_cls = message_factory.GetMessageClass(m.output_type)
        return stage, req_cls, resp_cls, f"/{service}/{method}"

    def call(self, op: str, request: Mapping[str, Any], render_id: str = "") -> Any:
        import grpc
        from google.protobuf import json_format

        from lihq.grpc.errors import error_from_rpc

        stage, req_cls, resp_cls, path = self.method(op)
        try:
            msg = json_format.ParseDict(dict(request), req_cls())
        except json_format.ParseError as exc:
            raise InvalidInput(f"request does not match {req_cls.DESCRIPTOR.full_name}: {exc}") from exc
        if render_id and "ctx" in req_cls.DESCRIPTOR.fields_by_name and not msg.ctx.render_id:
            msg.ctx.render_id = render_id
        ep = self.endpoints.get(stage)
        rpc = self._channel(ep.address).unary_unary(
            path, request_serializer=req_cls.SerializeToString, response_deserializer=resp_cls.FromString
        )
        try:
            from lihq.grpc.auth import internal_metadata

            md = (("application", ep.application), *internal_metadata())
            return rpc(msg, metadata=md, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc

    def close(self) -> None:
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()


def object_keys(message: Any) -> list[str]:
    """Keys of every lihq.v1.ObjectRef inside a response message (depth first, in field order)."""
    if message.DESCRIPTOR.full_name == "lihq.v1.ObjectRef":
        return [message.key] if message.key else []
    out: list[str] = []
    for fd, value in message.ListFields():
        if fd.message_type is None or fd.message_type.GetOptions().map_entry:
            continue
        for item in value if _repeated(fd) else [value]:
            out.extend(object_keys(item))
    return out


def _repeated(fd: Any) -> bool:
    """FieldDescriptor.is_repeated (protobuf >= 5.29) or the older `label` check."""
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED
