"""The protocol-neutral data plane behind KServe V1, V2 REST and V2 gRPC (see `plane`)."""

from hf_runtime.dataplane.plane import DataPlane
from hf_runtime.dataplane.types import (
    InferenceRequest,
    InferenceResponse,
    RequestedOutput,
    RequestTensor,
    ServerMetadata,
)

__all__ = [
    "DataPlane",
    "InferenceRequest",
    "InferenceResponse",
    "RequestTensor",
    "RequestedOutput",
    "ServerMetadata",
]
