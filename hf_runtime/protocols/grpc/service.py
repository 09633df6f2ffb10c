"""`inference.GRPCInferenceService` over the data plane: a thin adapter, like the V2 REST app.

Each RPC decodes its message with `codec`, asks the data plane, and encodes the answer. Errors
are raised as `hf_runtime.errors` exceptions; the server's guard (see `server`) turns them into
gRPC status codes from the one error table, and applies keys, drain and request contexts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

from hf_runtime.dataplane import DataPlane
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.grpc import codec
from hf_runtime.protocols.grpc import open_inference_messages_pb2 as pb
from hf_runtime.protocols.grpc.open_inference_pb2_grpc import GRPCInferenceServiceServicer
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES

SERVICE_NAME = "inference.GRPCInferenceService"
# Health RPCs stay open like HTTP's probe routes: no key, answered while draining, not counted
# in flight.
PROBE_METHODS = frozenset({f"/{SERVICE_NAME}/ServerLive", f"/{SERVICE_NAME}/ServerReady"})


def _version(value: str) -> str | None:
    return value or None  # proto3 sends "" for "no version"


class InferenceServicer(GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane, is_draining: Callable[[], bool]) -> None:
        self._plane = plane
        self._is_draining = is_draining

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self._plane.live())

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._plane.ready() and not self._is_draining())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        ready = self._plane.model_ready(request.name, _version(request.version))
        return pb.ModelReadyResponse(ready=ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return codec.encode_server_metadata(self._plane.server_metadata())

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        metadata = self._plane.model_metadata(request.name, _version(request.version))
        return codec.encode_model_metadata(metadata)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        name, version = request.model_name, _version(request.model_version)
        self._plane.check_inference(name, version)  # 404 / 503 before decoding, as over REST
        if request.ByteSize() > LARGE_BODY_BYTES:
            # Checking megabytes of tensors would hold up every other RPC on the loop.
            decoded = await asyncio.to_thread(codec.decode_infer_request, request)
        else:
            decoded = codec.decode_infer_request(request)
        response = await self._plane.infer(name, version, decoded)
        return codec.encode_infer_response(response, codec.raw_outputs(request, decoded))

    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        entries = await self._plane.repository_index(request.repository_name, request.ready)
        return pb.RepositoryIndexResponse(
            models=[
                pb.RepositoryIndexResponse.ModelIndex(
                    name=e.name, version=e.version, state=e.state.value, reason=e.reason
                )
                for e in entries
            ]
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        if request.parameters:
            raise InvalidInput(
                "load parameters are not supported (got "
                + ", ".join(sorted(request.parameters))
                + "): a model's settings come from its model repository folder",
                param="parameters",
            )
        await self._plane.load_model(request.model_name, request.repository_name)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        unknown = sorted(set(request.parameters) - {"unload_dependents"})
        if unknown:
            raise InvalidInput(
                f"unknown unload parameter(s) {', '.join(unknown)}; allowed: unload_dependents",
                param="parameters",
            )
        if "unload_dependents" in request.parameters:
            choice = request.parameters["unload_dependents"].WhichOneof("parameter_choice")
            if choice != "bool_param":
                raise InvalidInput("unload_dependents must be a bool_param", param="parameters")
        await self._plane.unload_model(request.model_name, request.repository_name)
        return pb.RepositoryModelUnloadResponse()
