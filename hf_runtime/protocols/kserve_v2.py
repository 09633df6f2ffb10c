"""Open Inference Protocol V2 (KServe V2 / Triton) REST routes, as a FastAPI sub-app.

Routes are declared relative to the mount (see `make_app`). Differences from KServe, all
toward clearer client errors:
  - shape is checked against the data (KServe ignores it); `shape: []` is one scalar element;
  - exactly one BYTES input is accepted (KServe silently uses inputs[0] and drops the rest);
  - `/health/ready` answers 503 `{"ready": false}` until every model has loaded (KServe always
    says ready); tritonclient's `is_server_ready()` only checks for status 200;
  - requested `outputs` filter the response (an unknown name is a 400);
  - `/versions/{v}` routes serve a model that declares version v in its metadata; for an
    unversioned model they answer 501 "Model versioning not supported yet." like KServe.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from starlette.exceptions import HTTPException

from hf_runtime.errors import InvalidInput, ModelNotReady, NotImplementedFeature
from hf_runtime.model import ModelRegistry, ServedModel
from hf_runtime.protocols import v2_codec
from hf_runtime.protocols.errors import install_error_handlers, kserve_body
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES, JSONBodyError, decode_json
from hf_runtime.types import OutputTensor, TensorSpec

SERVER_NAME = "hf-runtime"
EXTENSIONS = ["binary_tensor_data"]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: dict[str, Any] | None = None
    data: Any = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """The JSON part of a V2 infer request (the binary tail, if any, is handled separately)."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def make_app(registry: ModelRegistry, prefix: str = "") -> FastAPI:
    """The V2 sub-app over `registry`.

    Mount it at "/v2" with the default `prefix`, or at "/" with `prefix="/v2"`. Only the second
    serves `GET /v2` itself: under a "/v2" mount the parent router answers the bare "/v2" with a
    redirect to "/v2/", which tritonclient's `get_server_metadata()` does not follow.
    """
    app = FastAPI(title="Open Inference Protocol V2", docs_url=None, redoc_url=None)
    install_error_handlers(app, kserve_body)
    prefix = prefix.rstrip("/")

    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": _package_version(), "extensions": EXTENSIONS}

    for path in [prefix, prefix + "/"] if prefix else ["/"]:
        app.add_api_route(path, server_metadata, methods=["GET"])

    @app.get(prefix + "/health/live")
    async def server_live() -> dict[str, Any]:
        return {"live": True}

    @app.get(prefix + "/health/ready")
    async def server_ready() -> JSONResponse:
        ready = registry.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get(prefix + "/models")
    async def list_models() -> dict[str, Any]:
        return {"models": registry.names()}

    @app.get(prefix + "/models/{name}")
    async def model_metadata(name: str) -> dict[str, Any]:
        return _metadata_body(registry.get(name))

    @app.get(prefix + "/models/{name}/versions/{model_version}")
    async def model_version_metadata(name: str, model_version: str) -> dict[str, Any]:
        model = registry.get(name)
        _check_version(model, model_version)
        return _metadata_body(model)

    @app.get(prefix + "/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        return _ready_body(registry.get(name))

    @app.get(prefix + "/models/{name}/versions/{model_version}/ready")
    async def model_version_ready(name: str, model_version: str) -> dict[str, Any]:
        model = registry.get(name)
        _check_version(model, model_version)
        return _ready_body(model)

    @app.post(prefix + "/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        return await _infer(registry.get(name), None, request)

    @app.post(prefix + "/models/{name}/versions/{model_version}/infer")
    async def infer_version(name: str, model_version: str, request: Request) -> Response:
        model = registry.get(name)
        _check_version(model, model_version)
        return await _infer(model, model_version, request)

    return app


@functools.cache
def _package_version() -> str:
    try:
        return version("hf-runtime")
    except PackageNotFoundError:
        return "0+unknown"


def _spec_body(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def _metadata_body(model: ServedModel) -> dict[str, Any]:
    metadata = model.metadata()  # raises ModelNotReady while loading
    return {
        "name": model.name,
        "versions": metadata.versions,
        "platform": metadata.platform,
        "inputs": [_spec_body(s) for s in metadata.inputs],
        "outputs": [_spec_body(s) for s in metadata.outputs],
    }


def _ready_body(model: ServedModel) -> dict[str, Any]:
    if not model.ready:
        raise ModelNotReady(model.name)
    return {"name": model.name, "ready": True}


def _check_version(model: ServedModel, model_version: str) -> None:
    versions = model.metadata().versions
    if not versions:
        raise NotImplementedFeature("Model versioning not supported yet.")
    if model_version not in versions:
        raise HTTPException(
            status_code=404,
            detail=f"Model {model.name} has no version {model_version}; "
            f"versions: {', '.join(versions)}",
        )


# ---------------------------------------------------------------- inference


async def _infer(model: ServedModel, model_version: str | None, request: Request) -> Response:
    if not model.ready:  # before parsing: a loading model answers 503 whatever the body
        raise ModelNotReady(model.name)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise InvalidInput(f"Content-Encoding {encoding!r} is not supported; send identity")
    raw = await request.body()
    header_bytes, tail = v2_codec.split_binary_body(
        raw, request.headers.get(v2_codec.HEADER_LENGTH_HEADER)
    )
    if len(raw) > LARGE_BODY_BYTES:
        # Decoding and checking megabytes of tensors would hold up every other request.
        body, texts = await asyncio.to_thread(_read_request, model, header_bytes, tail)
    else:
        body, texts = _read_request(model, header_bytes, tail)
    binary_outputs = _binary_outputs(body)  # validated before the (costly) prediction

    prediction = await model.predict(texts)

    header: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model_version,
        "id": body.id if body.id is not None else str(uuid.uuid4()),
        "parameters": None,
        "outputs": [],
    }
    chunks: list[bytes] = []
    for tensor in _select_outputs(prediction.tensors, body.outputs):
        if binary_outputs(tensor.name):
            entry, raw = v2_codec.encode_output_binary(tensor)
            chunks.append(raw)
        else:
            entry = v2_codec.encode_output_json(tensor)
        header["outputs"].append(entry)
    if not chunks:
        return JSONResponse(header)
    content, header_length = v2_codec.encode_binary_body(header, chunks)
    return Response(
        content=content,
        media_type="application/octet-stream",
        headers={v2_codec.HEADER_LENGTH_HEADER: str(header_length)},
    )


def _read_request(
    model: ServedModel, header_bytes: bytes, tail: bytes
) -> tuple[InferenceRequest, list[str]]:
    """The validated request and its texts. Blocking on large bodies: see `_infer`."""
    body = _parse_request(header_bytes)
    tensors = _decode_inputs(body, tail)
    return body, _text_instances(model, body.inputs, tensors)


# pydantic words its type errors for Python objects; the client sent JSON, so say it in JSON's
# terms (as pydantic's own JSON mode does).
_JSON_TYPE_MESSAGES = {
    "model_type": "Input should be an object",
    "dict_type": "Input should be an object",
    "list_type": "Input should be a valid array",
}


def _parse_request(header_bytes: bytes) -> InferenceRequest:
    if not header_bytes.strip():
        raise InvalidInput("empty request body: expected a V2 inference request JSON object")
    try:
        payload = decode_json(header_bytes)  # the strict decoder every protocol shares
    except JSONBodyError as exc:
        raise InvalidInput(f"Invalid JSON: request body is not valid JSON ({exc})") from None
    try:
        return InferenceRequest.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            error["msg"] = _JSON_TYPE_MESSAGES.get(error["type"], error["msg"])
        # The installed handler turns this into one readable 400 line.
        raise RequestValidationError(errors) from None


def _decode_inputs(body: InferenceRequest, tail: bytes) -> list[list[Any]]:
    """Every input as a flat list, consuming the binary tail in input order."""
    decoded: list[list[Any]] = []
    offset = 0
    for tensor in body.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        raw: bytes | None = None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(
                    f"input '{tensor.name}': binary_data_size must be a non-negative integer"
                )
            if offset + size > len(tail):
                raise InvalidInput(
                    f"input '{tensor.name}': binary_data_size is {size} but only "
                    f"{len(tail) - offset} bytes of binary data remain (truncated body or "
                    f"wrong {v2_codec.HEADER_LENGTH_HEADER})"
                )
            raw = tail[offset : offset + size]
            offset += size
        decoded.append(
            v2_codec.decode_tensor(tensor.name, tensor.datatype, tensor.shape, tensor.data, raw)
        )
    if offset != len(tail):
        raise InvalidInput(
            f"{len(tail) - offset} bytes of binary data follow the inputs that no input "
            "declares with binary_data_size"
        )
    return decoded


def _text_instances(
    model: ServedModel, inputs: list[RequestInput], decoded: list[list[Any]]
) -> list[str]:
    """The one BYTES input as the batch of texts (KServe would silently drop extra inputs)."""
    if len(inputs) != 1:
        names = ", ".join(repr(t.name) for t in inputs)
        raise InvalidInput(f"model {model.name} takes exactly one BYTES input, got {names}")
    tensor, values = inputs[0], decoded[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(
            f"model {model.name} takes text: input '{tensor.name}' must be BYTES, "
            f"got {tensor.datatype}"
        )
    if not values:
        raise InvalidInput(f"input '{tensor.name}' has no elements")
    return v2_codec.decode_text_elements(tensor.name, values)


def _binary_outputs(body: InferenceRequest) -> Callable[[str], bool]:
    """Output name -> send it binary? A per-output `binary_data` overrides the request-wide
    `binary_data_output` (Triton's rule)."""
    default = _binary_flag(body.parameters, "binary_data_output") or False
    per_output: dict[str, bool] = {}
    for output in body.outputs or []:
        flag = _binary_flag(output.parameters, "binary_data")
        if flag is not None:
            per_output[output.name] = flag
    return lambda name: per_output.get(name, default)


def _select_outputs(
    tensors: list[OutputTensor], requested: list[RequestOutput] | None
) -> list[OutputTensor]:
    if not requested:
        return tensors
    by_name = {t.name: t for t in tensors}
    unknown = [o.name for o in requested if o.name not in by_name]
    if unknown:
        raise InvalidInput(
            f"unknown output '{unknown[0]}'; this model returns: {', '.join(by_name)}"
        )
    names = dict.fromkeys(o.name for o in requested)  # requested order, duplicates dropped
    return [by_name[name] for name in names]


def _binary_flag(parameters: dict[str, Any] | None, key: str) -> bool | None:
    if not parameters or key not in parameters:
        return None
    value = parameters[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"parameter {key} must be true or false, got {value!r}")
    return value
