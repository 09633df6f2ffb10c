"""Open Inference Protocol V2 (KServe V2 / Triton) REST routes, as a FastAPI sub-app.

A thin adapter: HTTP bodies are decoded by the `v2_json` / `v2_binary` codecs into the data
plane's neutral request, and its answers encoded back; what a request means (one BYTES input,
shapes, versions, readiness, output filtering) is decided by `hf_runtime.dataplane`. Differences
from KServe, all toward clearer client errors:
  - shape is checked against the data (KServe ignores it); `shape: []` is one scalar element;
  - exactly one BYTES input is accepted (KServe silently uses inputs[0] and drops the rest),
    or two named `text` and `text_pair` (text pairs, scored by rerank and embedding models);
  - `/health/ready` answers 503 `{"ready": false}` until every model has loaded (KServe always
    says ready); tritonclient's `is_server_ready()` only checks for status 200;
  - requested `outputs` filter the response (an unknown name is a 400);
  - `/versions/{v}` routes serve a model that declares version v in its metadata; for an
    unversioned model they answer 501 "Model versioning not supported yet." like KServe.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from hf_runtime.dataplane import DataPlane, InferenceRequest
from hf_runtime.errors import InvalidInput
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.codecs import v2_binary, v2_json
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.errors import install_error_handlers, kserve_body
from hf_runtime.protocols.json_body import (
    LARGE_BODY_BYTES,
    JSONBodyError,
    decode_json,
    json_bytes,
)
from hf_runtime.protocols.kserve_v2_repository import add_repository_routes
from hf_runtime.protocols.lean_route import LeanRoute
from hf_runtime.routes import (
    V2_INFER,
    V2_LIVE,
    V2_MODEL,
    V2_MODEL_READY,
    V2_MODELS,
    V2_READY,
    V2_SERVER,
    V2_SERVER_SLASH,
    V2_VERSION,
    V2_VERSION_INFER,
    V2_VERSION_READY,
)
from hf_runtime.types import ModelMetadata, TensorSpec


def make_app(registry: ModelRegistry, prefix: str = "") -> FastAPI:
    """The V2 sub-app over `registry`.

    Mount it at "/v2" with the default `prefix`, or at "/" with `prefix="/v2"`. Only the second
    serves `GET /v2` itself: under a "/v2" mount the parent router answers the bare "/v2" with a
    redirect to "/v2/", which tritonclient's `get_server_metadata()` does not follow.
    """
    app = FastAPI(title="Open Inference Protocol V2", docs_url=None, redoc_url=None)
    install_error_handlers(app, kserve_body)
    prefix = prefix.rstrip("/")
    plane = DataPlane(registry)

    async def server_metadata() -> dict[str, Any]:
        metadata = plane.server_metadata()
        return {
            "name": metadata.name,
            "version": metadata.version,
            "extensions": metadata.extensions,
        }

    for route in (V2_SERVER, V2_SERVER_SLASH):
        if prefix + route.path:  # under a "/v2" mount only "/" (the mount answers "/v2")
            app.add_api_route(prefix + route.path, server_metadata, methods=[route.method])

    @app.get(prefix + V2_LIVE.path)
    async def server_live() -> JSONResponse:
        live = plane.live()  # false once a model's engine died
        return JSONResponse({"live": live}, status_code=200 if live else 503)

    @app.get(prefix + V2_READY.path)
    async def server_ready() -> JSONResponse:
        ready = plane.ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get(prefix + V2_MODELS.path)
    async def list_models() -> dict[str, Any]:
        return {"models": plane.model_names()}

    @app.get(prefix + V2_MODEL.path)
    async def model_metadata(name: str) -> dict[str, Any]:
        return _metadata_body(plane.model_metadata(name))

    @app.get(prefix + V2_VERSION.path)
    async def model_version_metadata(name: str, model_version: str) -> dict[str, Any]:
        return _metadata_body(plane.model_metadata(name, model_version))

    @app.get(prefix + V2_MODEL_READY.path)
    async def model_ready(name: str) -> dict[str, Any]:
        return _ready_body(plane, name, None)

    @app.get(prefix + V2_VERSION_READY.path)
    async def model_version_ready(name: str, model_version: str) -> dict[str, Any]:
        return _ready_body(plane, name, model_version)

    hot = APIRouter(route_class=LeanRoute)  # the encoder hot path: no per-request FastAPI work

    @hot.post(prefix + V2_INFER.path)
    async def infer(name: str, request: Request) -> Response:
        return await _infer(plane, name, None, request)

    @hot.post(prefix + V2_VERSION_INFER.path)
    async def infer_version(name: str, model_version: str, request: Request) -> Response:
        return await _infer(plane, name, model_version, request)

    app.include_router(hot)

    add_repository_routes(app, plane, prefix)
    return app


def _spec_body(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _metadata_body(metadata: ModelMetadata) -> dict[str, Any]:
    return {
        "name": metadata.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": [_spec_body(s) for s in metadata.inputs],
        "outputs": [_spec_body(s) for s in metadata.outputs],
    }


def _ready_body(plane: DataPlane, name: str, model_version: str | None) -> dict[str, Any]:
    # KServe answers 503 for a model that is not ready; a FAILED one's message says why.
    plane.require_ready(name, model_version)
    return {"name": name, "ready": True}


# ---------------------------------------------------------------- inference


async def _infer(
    plane: DataPlane, name: str, model_version: str | None, request: Request
) -> Response:
    plane.check_inference(name, model_version)  # before reading: a loading model answers 503
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; send identity")
    raw = await request.body()
    header_bytes, tail = v2_binary.split_binary_body(
        raw, request.headers.get(v2_binary.HEADER_LENGTH_HEADER)
    )
    if len(raw) > LARGE_BODY_BYTES:
        # Decoding and checking megabytes of tensors would hold up every other request.
        decoded = await asyncio.to_thread(read_request, header_bytes, tail)
    else:
        decoded = read_request(header_bytes, tail)

    response = await cancel_on_disconnect(request, plane.infer(name, model_version, decoded))
    if isinstance(response, Response):  # the client left: its work was dropped
        return response

    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor in response.outputs:
        if decoded.wants_binary(tensor.name):
            entry, chunk = v2_binary.encode_output_binary(tensor)
            chunks.append(chunk)
        else:
            entry = v2_json.encode_output_json(tensor)
        outputs.append(entry)
    header = v2_json.encode_response_header(response, outputs)
    if not chunks:
        return Response(json_bytes(header), media_type="application/json")
    content, header_length = v2_binary.encode_binary_body(header, chunks)
    return Response(
        content=content,
        media_type="application/octet-stream",
        headers={v2_binary.HEADER_LENGTH_HEADER: str(header_length)},
    )


def read_request(header_bytes: bytes, tail: bytes) -> InferenceRequest:
    """The neutral request of a V2 REST body (JSON header + binary tail). Blocking on large
    bodies: see `_infer`."""
    body = _parse_body(header_bytes)
    binary = v2_binary.BinaryTail(tail)
    request = v2_json.decode_request(body, binary.take)
    binary.finish()
    return request


# pydantic words its type errors for Python objects; the client sent JSON, so say it in JSON's
# terms (as pydantic's own JSON mode does).
_JSON_TYPE_MESSAGES = {
    "model_type": "Input should be an object",
    "dict_type": "Input should be an object",
    "list_type": "Input should be a valid array",
}


def _parse_body(header_bytes: bytes) -> v2_json.InferenceRequestBody:
    if not header_bytes.strip():
        raise InvalidInput("empty request body: expected a V2 inference request JSON object")
    try:
        payload = decode_json(header_bytes)  # the strict decoder every protocol shares
    except JSONBodyError as exc:
        raise InvalidInput(f"Invalid JSON: request body is not valid JSON ({exc})") from None
    try:
        return v2_json.InferenceRequestBody.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            error["msg"] = _JSON_TYPE_MESSAGES.get(error["type"], error["msg"])
        # The installed handler turns this into one readable 400 line.
        raise RequestValidationError(errors) from None
