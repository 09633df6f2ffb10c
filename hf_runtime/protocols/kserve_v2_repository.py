"""The V2 model repository extension over REST, as tritonclient's http client calls it:

  - `POST /v2/repository/index`: body empty or `{"ready": bool}`; answers a JSON array of
    `{"name", "state", "reason"}` (state READY, LOADING, UNAVAILABLE or FAILED);
  - `POST /v2/repository/models/{name}/load`: answers `{"name", "load": true}` (KServe's body;
    tritonclient reads only the status) once the model is ready; loading twice is a no-op;
  - `POST /v2/repository/models/{name}/unload`: answers `{"name", "unload": true}` once the
    model's requests in flight ended (or the drain timeout passed) and it is freed.
Triton's load parameters that override the model's config or files are refused (400): a
model's settings come from the repository folder. Unknown model: 404; a failed load: 400 with
the reason (the index then says FAILED with the same reason).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hf_runtime.dataplane import DataPlane
from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.json_body import JSONBodyError, decode_json
from hf_runtime.routes import V2_REPOSITORY_INDEX, V2_REPOSITORY_LOAD, V2_REPOSITORY_UNLOAD
from hf_runtime.types import RepositoryEntry

MAX_BODY_BYTES = 64 * 1024  # these bodies hold a few flags
UNLOAD_PARAMETERS = frozenset({"unload_dependents"})  # adapters always go with their base

# The OpenAPI description of the bodies these routes read themselves (each is optional).
_REPOSITORY_NAME = {"type": "string", "description": "Empty or absent: the one repository."}
INDEX_REQUEST = {
    "type": "object",
    "properties": {
        "repository_name": _REPOSITORY_NAME,
        "ready": {"type": "boolean", "description": "Only the models that are READY."},
    },
    "additionalProperties": False,
}
LOAD_REQUEST = {
    "type": "object",
    "properties": {
        "repository_name": _REPOSITORY_NAME,
        "parameters": {
            "type": "object",
            "maxProperties": 0,
            "description": "Triton's config and file overrides are not supported.",
        },
    },
    "additionalProperties": False,
}
UNLOAD_REQUEST = {
    "type": "object",
    "properties": {
        "repository_name": _REPOSITORY_NAME,
        "parameters": {
            "type": "object",
            "properties": {"unload_dependents": {"type": "boolean"}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
INDEX_RESPONSE = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "state", "reason"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE", "FAILED"]},
            "reason": {"type": "string"},
        },
    },
}


def _documented(request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """Route options: the body read by hand (optional) and the 200 answer, for OpenAPI."""
    json_of = "application/json"
    return {
        "openapi_extra": {
            "requestBody": {"required": False, "content": {json_of: {"schema": request}}}
        },
        "responses": {200: {"description": "OK", "content": {json_of: {"schema": response}}}},
    }


def _done(word: str) -> dict[str, Any]:
    properties = {"name": {"type": "string"}, word: {"type": "boolean", "const": True}}
    return {"type": "object", "required": ["name", word], "properties": properties}


def add_repository_routes(app: FastAPI, plane: DataPlane, prefix: str) -> None:
    @app.post(prefix + V2_REPOSITORY_INDEX.path, **_documented(INDEX_REQUEST, INDEX_RESPONSE))
    async def repository_index(request: Request) -> JSONResponse:
        body = await _read_body(request, allowed={"repository_name", "ready"})
        ready = body.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidInput(f"ready must be true or false, got {ready!r}", param="ready")
        entries = await plane.repository_index(_repository_name(body), ready_only=ready)
        return JSONResponse([index_entry(entry) for entry in entries])

    @app.post(prefix + V2_REPOSITORY_LOAD.path, **_documented(LOAD_REQUEST, _done("load")))
    async def load(name: str, request: Request) -> dict[str, Any]:
        body = await _read_body(request, allowed={"repository_name", "parameters"})
        parameters = _parameters(body)
        if parameters:
            raise InvalidInput(
                "load parameters are not supported (got "
                + ", ".join(sorted(map(str, parameters)))
                + "): a model's settings come from its model repository folder",
                param="parameters",
            )
        await plane.load_model(name, _repository_name(body))
        return {"name": name, "load": True}

    @app.post(
        prefix + V2_REPOSITORY_UNLOAD.path,
        **_documented(UNLOAD_REQUEST, _done("unload")),
    )
    async def unload(name: str, request: Request) -> dict[str, Any]:
        body = await _read_body(request, allowed={"repository_name", "parameters"})
        parameters = _parameters(body)
        unknown = sorted(set(parameters) - UNLOAD_PARAMETERS)
        if unknown:
            raise InvalidInput(
                f"unknown unload parameter(s) {', '.join(unknown)}; allowed: unload_dependents",
                param="parameters",
            )
        if not isinstance(parameters.get("unload_dependents", False), bool):
            raise InvalidInput("unload_dependents must be true or false", param="parameters")
        await plane.unload_model(name, _repository_name(body))
        return {"name": name, "unload": True}


def index_entry(entry: RepositoryEntry) -> dict[str, Any]:
    body: dict[str, Any] = {"name": entry.name, "state": entry.state.value, "reason": entry.reason}
    if entry.version:
        body["version"] = entry.version
    return body


async def _read_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"request body over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}  # tritonclient sends the index request without a body
    try:
        body = decode_json(raw)
    except JSONBodyError as exc:
        raise InvalidInput(f"Invalid JSON: request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return body


def _repository_name(body: dict[str, Any]) -> str:
    name = body.get("repository_name", "")
    if not isinstance(name, str):
        raise InvalidInput("repository_name must be a string", param="repository_name")
    return name


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    parameters = body.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object", param="parameters")
    return parameters
