"""The gRPC server: Open Inference Protocol V2 on grpc.aio, beside the HTTP server.

It shares the HTTP gateway's settings and in-flight counter, and `Guard` does for every RPC
what the HTTP `Gateway` does for every request:
  - a request context (the client's `x-request-id` metadata when sane, else a fresh id; echoed
    in the trailing metadata) so logs and metrics name the request, protocol "grpc";
  - UNAVAILABLE for new RPCs while the server drains; health RPCs stay open;
  - UNAUTHENTICATED without a valid API key (`authorization: Bearer <key>` or `x-api-key`
    metadata) on every RPC but the health ones;
  - in-flight RPCs counted in the gateway's counter, so the SIGTERM drain waits for them too;
  - `hf_runtime.errors` exceptions as the gRPC status of the one error table; a bug is INTERNAL
    and logged, never a client's bad input;
  - request duration on /metrics;
  - a message that does not parse (corrupt wire format, bad UTF-8 in a string field, groups
    nested past protobuf's limit) is INVALID_ARGUMENT: gRPC decodes a message before any handler
    or interceptor code runs and answers UNKNOWN for a decode error, so the guard wraps the
    method's deserializer to hand the handler a `MalformedMessage` instead.
Messages over `max_request_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from hf_runtime.dataplane import DataPlane
from hf_runtime.errors import ErrorKind, HFRuntimeError
from hf_runtime.model import ModelRegistry
from hf_runtime.observability.context import (
    REQUEST_ID_HEADER,
    RequestContext,
    new_request_id,
    request_scope,
)
from hf_runtime.observability.logs import shorten
from hf_runtime.observability.metrics import observe_request
from hf_runtime.protocols.api_keys import key_error
from hf_runtime.protocols.errors import ERROR_TABLE, wire_message
from hf_runtime.protocols.gateway import GatewaySettings, InFlight
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import (
    add_GRPCInferenceServiceServicer_to_server,
)
from hf_runtime.protocols.grpc.service import PROBE_METHODS, InferenceServicer

logger = logging.getLogger("hf_runtime.grpc")

PROTOCOL = "grpc"
DRAINING = "the server is shutting down and takes no new requests; retry on another replica"
Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


@dataclass
class GrpcServer:
    """A started gRPC server; `port` is the one it bound (useful when asked for port 0)."""

    server: grpc.aio.Server
    host: str
    port: int

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new RPCs, let running ones finish for up to `grace` seconds, then stop."""
        await self.server.stop(grace)


async def start_grpc_server(
    registry: ModelRegistry,
    settings: GatewaySettings,
    in_flight: InFlight,
    port: int,
    host: str,
) -> GrpcServer:
    """Serve `inference.GRPCInferenceService` on host:port (port 0: a free one). Raises
    RuntimeError when the address cannot be bound."""
    server = grpc.aio.server(
        interceptors=[Guard(settings, in_flight)],
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            # gRPC sets SO_REUSEPORT by default: a second server would share a busy port
            # silently instead of failing to start.
            ("grpc.so_reuseport", 0),
        ],
    )
    servicer = InferenceServicer(DataPlane(registry), settings.is_draining)
    add_GRPCInferenceServiceServicer_to_server(servicer, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    await server.start()
    return GrpcServer(server, host, bound)


@dataclass(frozen=True)
class MalformedMessage:
    """What a method's deserializer returns for bytes that are not its request message."""

    reason: str


def tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserialize`, returning a MalformedMessage instead of raising (see the module)."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, or RecursionError on a pathological nesting
            return MalformedMessage(
                f"the request is not a valid protobuf message of this RPC ({type(exc).__name__});"
                " send a message encoded by a protobuf library"
            )

    return parse


class Guard(grpc.aio.ServerInterceptor):
    """Wraps every RPC of the service (see the module docstring)."""

    def __init__(self, settings: GatewaySettings, in_flight: InFlight) -> None:
        self.settings = settings
        self.in_flight = in_flight

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # an unknown method: gRPC answers UNIMPLEMENTED
        method = handler_call_details.method
        behavior: Behavior = handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self._call(method, behavior, request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    async def _call(
        self, method: str, behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        metadata = _metadata(context)
        request_context = RequestContext(new_request_id(metadata.get(REQUEST_ID_HEADER)), PROTOCOL)
        trailer = ((REQUEST_ID_HEADER, request_context.request_id),)
        context.set_trailing_metadata(trailer)
        probe = method in PROBE_METHODS
        with request_scope(request_context):
            error = None if probe else self._rejection(metadata)
            if error is None and isinstance(request, MalformedMessage):
                error = (ErrorKind.INVALID_INPUT, request.reason)
            if error is None:
                if not probe:
                    self.in_flight.count += 1
                try:
                    response = await behavior(request, context)
                    if not probe:
                        self._observe(request_context, 200)
                    return response
                except HFRuntimeError as exc:
                    if exc.kind is ErrorKind.INTERNAL:
                        logger.error("internal error on %s: %s", method, exc.message)
                    error = (exc.kind, exc.message)
                except Exception as exc:  # a bug: log it, answer INTERNAL without internals
                    logger.exception("unhandled error on %s", shorten(method, 200), exc_info=exc)
                    error = (ErrorKind.INTERNAL, f"Internal server error: {type(exc).__name__}")
                finally:
                    if not probe:
                        self.in_flight.count -= 1
            assert error is not None  # the RPC returned otherwise
            kind, message = error
            http_status, _, grpc_status = ERROR_TABLE[kind]
            if not probe:
                self._observe(request_context, http_status)
            await context.abort(
                grpc.StatusCode[grpc_status], wire_message(message), trailing_metadata=trailer
            )

    def _rejection(self, metadata: dict[str, str]) -> tuple[ErrorKind, str] | None:
        """Why an RPC is refused before it runs, or None to let it through."""
        if self.settings.is_draining():
            return ErrorKind.NOT_READY, DRAINING
        refused = key_error(metadata, self.settings.api_keys)
        if refused is not None:
            return ErrorKind.UNAUTHENTICATED, refused
        return None

    @staticmethod
    def _observe(request_context: RequestContext, status: int) -> None:
        seconds = time.perf_counter() - request_context.arrived
        observe_request(request_context.model, PROTOCOL, status, seconds)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The RPC's text metadata (binary `-bin` entries are never keys or ids)."""
    return {
        key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
    }
