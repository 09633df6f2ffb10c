"""OpenAPI documents that list what the server really answers.

FastAPI documents a route's 200 plus a 422 this server never sends (validation errors are 400
here), and knows nothing of the Gateway in front of every app (401, 413, 503 while draining,
JSON 404s, 500s in the protocol's shape). `document_app` corrects an app once, at mount time:
  - every operation lists the statuses it can answer, each with the protocol's error body;
  - 422 and its schemas leave the document;
  - streaming routes also document `text/event-stream`, V2 infer its binary extension;
  - V1 predict and V2 infer parse their bodies themselves, so their bodies are documented here;
  - the description states the limits the server enforces.

Responses and request bodies are set on the routes themselves rather than only patched into
the generated document: BentoML's /docs.json regenerates every mounted FastAPI app's paths from
its routes (never calling `app.openapi()`), and this way it lists them too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route as StarletteRoute

from hf_runtime.protocols.codecs.v2_json import InferenceRequestBody
from hf_runtime.protocols.gateway import GatewaySettings
from hf_runtime.protocols.openai import schemas as openai_schemas
from hf_runtime.routes import (
    TEI_SHARED_PATHS,
    V1_PREDICT,
    V2_INFER,
    V2_READY,
    V2_VERSION_INFER,
    Route,
    route_at,
)

DEFAULT_MAX_REQUEST_BYTES = GatewaySettings.max_request_bytes
JSON = "application/json"
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class ErrorShape(str, Enum):
    """Which error body an app answers with (see hf_runtime.protocols.errors)."""

    KSERVE = "kserve"  # {"error": "message"}
    OPENAI = "openai"  # {"error": {"message", "type", "param", "code"}}
    ANTHROPIC = "anthropic"  # {"type": "error", "error": {"type", "message"}}
    TEI = "tei"  # {"error": "message", "error_type": "validation"}


KSERVE_ERROR: dict[str, Any] = {
    "title": "KServeError",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong."}},
}

OPENAI_ERROR: dict[str, Any] = {
    "title": "OpenAIError",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "e.g. BadRequestError"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "code": {"type": "integer", "description": "The HTTP status."},
            },
        }
    },
}

ANTHROPIC_ERROR: dict[str, Any] = {
    "title": "AnthropicError",
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "e.g. invalid_request_error"},
                "message": {"type": "string"},
            },
        },
    },
}

# GET /models and /models/{name} under "/v1" are answered by the KServe V1 app (mounted first;
# same success body), so the OpenAI document says either error body can come back there.
TEI_ERROR: dict[str, Any] = {
    "title": "TEIError",
    "type": "object",
    "required": ["error", "error_type"],
    "properties": {
        "error": {"type": "string"},
        "error_type": {
            "type": "string",
            "enum": ["validation", "tokenizer", "backend", "overloaded", "unhealthy", "empty"],
        },
    },
}

EITHER_ERROR: dict[str, Any] = {
    "title": "KServeOrOpenAIError",
    "anyOf": [OPENAI_ERROR, KSERVE_ERROR],
}
# The root /rerank and /tokenize: OpenAI's shape for vLLM's bodies, TEI's for TEI's.
OPENAI_OR_TEI_ERROR: dict[str, Any] = {
    "title": "OpenAIOrTEIError",
    "anyOf": [OPENAI_ERROR, TEI_ERROR],
}

# Before OpenAPI 3.2 (FastAPI writes 3.1), an event stream's `schema` describes one event.
STREAM_EVENT: dict[str, Any] = {
    "title": "ServerSentEvent",
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chunk (JSON: chat.completion.chunk or text_completion), an OpenAI "
            "error body if generation fails mid-stream, and finally `[DONE]`.",
        },
        "event": {"type": "string"},
    },
}

READY_STATE: dict[str, Any] = {
    "title": "ReadyState",
    "type": "object",
    "required": ["ready"],
    "properties": {"ready": {"type": "boolean"}},
}

V1_TEXT_PAIR: dict[str, Any] = {
    "title": "TextPair",
    "type": "object",
    "required": ["text", "text_pair"],
    "properties": {"text": {"type": "string"}, "text_pair": {"type": "string"}},
    "additionalProperties": False,
}

V1_PREDICT_REQUEST: dict[str, Any] = {
    "title": "V1PredictRequest",
    "description": "The texts to predict on, or text pairs to score (rerank and embedding "
    'models). `"inputs"` is accepted instead of `"instances"` (not both); a bare string is '
    "one text.",
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "array", "items": V1_TEXT_PAIR, "minItems": 1},
                {"type": "string"},
            ]
        }
    },
}

STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: a body that is not JSON or does not fit the schema, a value out of "
    "range, or a request this model cannot serve.",
    401: "Missing or invalid API key (only when the server has keys): send "
    "`Authorization: Bearer <key>` or `x-api-key: <key>`.",
    404: "No such model (or model version), or no such route.",
    413: "Request body over max_request_bytes, or (with auto_truncate off) an input longer "
    "than the model takes.",
    424: "TEI routes: the model does not serve this route, e.g. /embed on a classifier "
    "(error_type backend).",
    429: "The model's queue is full: retry later.",
    500: "A bug or a backend failure; the message names the exception, nothing more.",
    501: "A protocol feature this server does not implement.",
    503: "The model is still loading, or the server is shutting down (Retry-After).",
}


def document_app(
    app: FastAPI,
    shape: ErrorShape,
    *,
    mounts: Sequence[str],
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    openapi_url: str | None = None,
) -> None:
    """Make `app`'s OpenAPI document tell the truth (see the module docstring).

    `mounts` are the paths the app is mounted at ("/" for the root): they become the
    document's servers and tell which routes are probes (no API key, no drain 503).
    `openapi_url` moves the document (relative to the app), e.g. off a root mount's
    "/openapi.json", which would otherwise pass for the whole service's document.
    """
    prefixes = [m.rstrip("/") for m in mounts]
    never_succeed: list[str] = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            declared = _declared(route, prefixes)
            shared = not prefixes[0] and route.path in TEI_SHARED_PATHS
            _document_route(route, declared, shape, shared_with_tei=shared)
            if declared.never_succeeds:  # FastAPI documents a 200 it never answers
                never_succeed.append(route.path)
    app.description = limits_description(max_request_bytes)
    # Fixed servers: FastAPI would otherwise add the root_path of whichever mount served the
    # document first, and clients could not tell that the app answers under every mount.
    app.servers = [{"url": p} for p in prefixes if p]
    app.openapi_schema = None
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            document = generate()
            document["info"]["x-limits"] = limits(max_request_bytes)
            for path in never_succeed:
                for operation in document["paths"].get(path, {}).values():
                    operation["responses"].pop("200", None)
            app.openapi_schema = drop_validation_errors(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    if openapi_url is not None:
        _move_document(app, openapi_url)


def limits(max_request_bytes: int) -> dict[str, int]:
    """The enforced limits, machine-readable (the document's `info.x-limits`)."""
    return {
        "max_request_bytes": max_request_bytes,
        "max_choices_per_prompt": openai_schemas.MAX_N,
        "max_prompts_per_completion": openai_schemas.MAX_PROMPTS,
        "max_embedding_inputs": openai_schemas.MAX_EMBEDDING_INPUTS,
        "max_logprobs": openai_schemas.MAX_LOGPROBS,
        "max_stop_sequences": openai_schemas.MAX_STOP_SEQUENCES,
    }


def limits_description(max_request_bytes: int) -> str:
    s = openai_schemas
    return (
        "Limits this server enforces, answered in this protocol's error body:\n\n"
        f"- a request body over {max_request_bytes} bytes (max_request_bytes) gets 413 before "
        "it is read;\n"
        "- when the server has API keys, every route but the health probes needs one "
        "(`Authorization: Bearer <key>` or `x-api-key`), else 401;\n"
        "- 503 while a model loads or the server drains; 429 when a model's queue is full;\n"
        "- an encoder request takes at most the model's `batching.max_queue_size` texts or "
        "text pairs (rerank documents, score texts; 400 beyond); a text (or pair) longer than "
        "the model's `max_model_len` tokens is truncated (`auto_truncate`, the default; a "
        "pair loses the end of its document) or refused with 413;\n"
        "- generation: prompt plus `max_tokens` must fit the model's context (400 naming both);\n"
        f"- OpenAI: `n` at most {s.MAX_N}, at most {s.MAX_PROMPTS} prompts per completions "
        f"request, {s.MAX_EMBEDDING_INPUTS} embedding inputs, {s.MAX_STOP_SEQUENCES} stop "
        f"sequences, `logprobs`/`top_logprobs` at most {s.MAX_LOGPROBS} (400 beyond)."
    )


def drop_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Remove the 422 responses (answered as 400 here) and the schemas only they used."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = document.get("components", {})
    schemas = components.get("schemas", {})
    kept = {name: s for name, s in schemas.items() if name not in VALIDATION_SCHEMAS}
    rest = json.dumps({**document, "components": {**components, "schemas": kept}})
    for name in VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in rest:  # a route may still declare one
            schemas.pop(name, None)
    if components and not schemas:
        components.pop("schemas", None)
        if not components:
            del document["components"]
    return document


# ---------------------------------------------------------------- per route


def _declared(route: APIRoute, prefixes: Sequence[str]) -> Route:
    """The route table's entry for an app's route (every route an app serves is declared)."""
    (method,) = route.methods - {"HEAD"}
    declared = route_at(method, (prefixes[0] if prefixes else "") + route.path)
    if declared is None:
        raise LookupError(f"{method} {route.path} is not in the route table (hf_runtime.routes)")
    return declared


def _document_route(
    route: APIRoute, declared: Route, shape: ErrorShape, *, shared_with_tei: bool = False
) -> None:
    error = {
        ErrorShape.KSERVE: KSERVE_ERROR,
        ErrorShape.OPENAI: OPENAI_ERROR,
        ErrorShape.ANTHROPIC: ANTHROPIC_ERROR,
        ErrorShape.TEI: TEI_ERROR,
    }[shape]
    if declared.shadowed_by_kserve():
        error = EITHER_ERROR
    statuses = set(declared.error_statuses())
    if shared_with_tei:  # TEI's bodies answer in TEI's shape, 424 included
        error = OPENAI_OR_TEI_ERROR
        statuses.add(424)

    responses: dict[int | str, Any] = route.responses
    for status in sorted(statuses):
        responses.setdefault(status, _error_response(status, error))
    if declared is V2_READY:
        responses.setdefault(503, _response("Not every model has loaded.", READY_STATE))

    if declared.streams:
        sse = {"schema": copy.deepcopy(STREAM_EVENT)}
        ok = responses.setdefault(200, {})
        ok.setdefault("content", {})["text/event-stream"] = sse
        ok.setdefault("description", "A completion; server-sent events when `stream` is true.")
    if declared in (V2_INFER, V2_VERSION_INFER):
        ok = responses.setdefault(200, {})
        binary = {"schema": {"type": "string", "format": "binary"}}
        ok.setdefault("content", {})["application/octet-stream"] = binary
        ok.setdefault(
            "description",
            "The V2 response; application/octet-stream (binary tensor extension, JSON header of "
            "Inference-Header-Content-Length bytes first) when an output is asked for binary.",
        )
        _set_request_body(route, _v2_request_body())
    if declared is V1_PREDICT:
        _set_request_body(
            route, {"required": True, "content": {JSON: {"schema": V1_PREDICT_REQUEST}}}
        )


def _error_response(status: int, schema: dict[str, Any]) -> dict[str, Any]:
    return _response(STATUS_DESCRIPTIONS[status], schema)


def _response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    # Deep copies: FastAPI mutates response dicts while generating the document.
    return {"description": description, "content": {JSON: {"schema": copy.deepcopy(schema)}}}


def _set_request_body(route: APIRoute, body: dict[str, Any]) -> None:
    """Document a body the route reads itself (it declares no body parameter)."""
    extra = route.openapi_extra if route.openapi_extra is not None else {}
    if route.body_field is None and "requestBody" not in extra:
        route.openapi_extra = {**extra, "requestBody": body}


def _v2_request_body() -> dict[str, Any]:
    schema = inline_defs(InferenceRequestBody.model_json_schema())
    schema["title"] = "V2InferenceRequest"
    binary = {
        "type": "string",
        "format": "binary",
        "description": "Binary tensor extension: the JSON request (its length in the "
        "Inference-Header-Content-Length header), then the inputs' raw bytes.",
    }
    return {
        "required": True,
        "content": {JSON: {"schema": schema}, "application/octet-stream": {"schema": binary}},
    }


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's `$defs` inlined: a route-level schema cannot add document components, and
    "#/$defs/..." would resolve against the OpenAPI document, not this schema."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


def _move_document(app: FastAPI, url: str) -> None:
    """Serve the document at `url` instead of `app.openapi_url`."""
    for route in list(app.router.routes):
        if isinstance(route, StarletteRoute) and route.path == app.openapi_url:
            app.router.routes.remove(route)
            app.add_route(url, route.endpoint, include_in_schema=False)
            app.openapi_url = url
            return
