"""Host a stage servicer on a plain `grpc.aio` server (no Ray), with health and reflection.

The same servicer class that a Ray Serve deployment wraps (methods `async def Name(request,
grpc_context)`) can be served directly: `serve_plain(servicer, [media_pb2.DESCRIPTOR.services_by_name
["MediaService"]], port)`. This is how a team runs one stage outside Ray, how tests exercise a servicer
without a cluster, and what an external replacement implementation looks like from the client side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lihq.errors import LihqError
from lihq.grpc.errors import as_lihq_error, short_details, status_code

log = logging.getLogger("lihq.grpc.server")


def _unary_handler(servicer: Any, name: str, req_cls: type, resp_cls: type) -> grpc.RpcMethodHandler:
    method = getattr(servicer, name)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            response = await method(request, grpc_context=context)
        except LihqError as exc:
            await context.abort(status_code(exc), short_details(exc.message))
        except Exception as exc:  # a bug: report INTERNAL, keep the traceback in the log
            if isinstance(exc, grpc.aio.AbortError):
                raise
            err = as_lihq_error(exc)
            log.exception("%s failed", name)
            await context.abort(status_code(err), err.message)
        code = context.code()
        if code not in (None, grpc.StatusCode.OK):  # the method set an error status (rpc_method)
            await context.abort(code, context.details() or code.name)
        return response

    return grpc.unary_unary_rpc_method_handler(
        call, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString
    )


def _stream_handler(servicer: Any, name: str, req_cls: type, resp_cls: type) -> grpc.RpcMethodHandler:
    """Server streaming: the servicer's method is an async generator taking (request, grpc_context)."""
    method = getattr(servicer, name)

    async def call(request: Any, context: grpc.aio.ServicerContext):
        try:
            async for item in method(request, grpc_context=context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # the method set the status before raising (WatchRender), or a bug
            code = context.code()
            if code in (None, grpc.StatusCode.OK):
                err = as_lihq_error(exc)
                log.exception("%s failed", name)
                await context.abort(status_code(err), short_details(err.message))
            await context.abort(code, context.details() or code.name)
        code = context.code()
        if code not in (None, grpc.StatusCode.OK):
            await context.abort(code, context.details() or code.name)

    return grpc.unary_stream_rpc_method_handler(
        call, request_deserializer=req_cls.FromString, response_serializer=resp_cls.SerializeToString
    )


def _client_stream_handler(servicer: Any, name: str, req_cls: type, resp_cls: type) -> grpc.RpcMethodHandler:
    """Client streaming: the servicer's method takes (async iterator of requests, grpc_context)."""
    unary = _unary_handler(servicer, name, req_cls, resp_cls)
    return grpc.stream_unary_rpc_method_handler(
        unary.unary_unary,
        request_deserializer=req_cls.FromString,
        response_serializer=resp_cls.SerializeToString,
    )


def generic_handler(servicer: Any, service: ServiceDescriptor) -> grpc.GenericRpcHandler:
    """Route every unary, server-streaming and client-streaming method of `service` to the same-named
    servicer method (bidirectional streams are not used by LIHQ's protos)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for m in service.methods:
        if (m.client_streaming and m.server_streaming) or not hasattr(type(servicer), m.name):
            continue
        req = message_factory.GetMessageClass(m.input_type)
        resp = message_factory.GetMessageClass(m.output_type)
        make = (
            _client_stream_handler
            if m.client_streaming
            else _stream_handler
            if m.server_streaming
            else _unary_handler
        )
        handlers[m.name] = make(servicer, m.name, req, resp)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


async def serve_plain(
    servicer: Any, services: Sequence[ServiceDescriptor], address: str = "127.0.0.1:0"
) -> tuple[grpc.aio.Server, int]:
    """Start a grpc.aio server for `servicer` with health + reflection; return (server, bound port)."""
    return await serve_plain_many([(servicer, services)], address)


async def serve_plain_many(
    hosted: Sequence[tuple[Any, Sequence[ServiceDescriptor]]], address: str = "127.0.0.1:0"
) -> tuple[grpc.aio.Server, int]:
    """Several servicers (distinct services) on one server, with health + reflection for all."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    all_services = [svc for _, services in hosted for svc in services]
    for servicer, services in hosted:
        for svc in services:
            server.add_generic_rpc_handlers((generic_handler(servicer, svc),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.full_name for s in all_services] + [health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(address)
    await server.start()
    for svc in all_services:
        await health_servicer.set(svc.full_name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port
