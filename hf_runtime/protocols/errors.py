"""The one table that maps error kinds to HTTP status and to each protocol's error body.

Domain code raises `hf_runtime.errors.HFRuntimeError` subclasses; routers install the handlers
below so every protocol answers in its own shape:
  - KServe V1 and V2: {"error": "<message>"}
  - OpenAI: {"error": {"message", "type", "param", "code"}}
  - text-embeddings-inference: {"error": "<message>", "error_type": "validation"}, with
    TEI's statuses (TEI_ERROR_TABLE)
FastAPI's request-validation errors are mapped too, so no route ever leaks `{"detail": [...]}`.

Every message and `param` on the wire (HTTP bodies, SSE error events, gRPC status details)
passes through `wire_message`: domain code previews the client values it echoes
(`hf_runtime.errors.preview`), and this bounds whatever a message still carries, so no error
is ever longer than a few hundred characters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hf_runtime.errors import ErrorKind, HFRuntimeError, preview
from hf_runtime.observability.logs import shorten

logger = logging.getLogger("hf_runtime.errors")

# kind -> (HTTP status, OpenAI error type, gRPC status name)
ERROR_TABLE: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.INVALID_INPUT: (400, "BadRequestError", "INVALID_ARGUMENT"),
    ErrorKind.UNSUPPORTED: (400, "BadRequestError", "INVALID_ARGUMENT"),
    ErrorKind.UNAUTHENTICATED: (401, "AuthenticationError", "UNAUTHENTICATED"),
    ErrorKind.NOT_FOUND: (404, "NotFoundError", "NOT_FOUND"),
    ErrorKind.TOO_LARGE: (413, "RequestTooLargeError", "RESOURCE_EXHAUSTED"),
    ErrorKind.OVERLOADED: (429, "RateLimitError", "RESOURCE_EXHAUSTED"),
    ErrorKind.NOT_IMPLEMENTED: (501, "NotImplementedError", "UNIMPLEMENTED"),
    ErrorKind.NOT_READY: (503, "ServiceUnavailableError", "UNAVAILABLE"),
    ErrorKind.INTERNAL: (500, "InternalServerError", "INTERNAL"),
}

_STATUS_TO_KIND = {
    400: ErrorKind.INVALID_INPUT,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.INVALID_INPUT,
    401: ErrorKind.UNAUTHENTICATED,
    413: ErrorKind.TOO_LARGE,
    415: ErrorKind.INVALID_INPUT,
    422: ErrorKind.INVALID_INPUT,
    429: ErrorKind.OVERLOADED,
    501: ErrorKind.NOT_IMPLEMENTED,
    503: ErrorKind.NOT_READY,
}


MESSAGE_CHARS = 400  # the most an error message on the wire carries
PARAM_CHARS = 64


def wire_message(message: str) -> str:
    """`message` as it goes on the wire: escaped and at most MESSAGE_CHARS (plus a count)."""
    return preview(message, MESSAGE_CHARS)


def status_for(kind: ErrorKind) -> int:
    return ERROR_TABLE[kind][0]


def kserve_body(kind: ErrorKind, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": wire_message(message)}


def openai_body(kind: ErrorKind, message: str, param: str | None = None) -> dict[str, Any]:
    status, err_type, _ = ERROR_TABLE[kind]
    bounded = None if param is None else preview(param, PARAM_CHARS)
    return {
        "error": {
            "message": wire_message(message),
            "type": err_type,
            "param": bounded,
            "code": status,
        }
    }


# Anthropic's error types (its API's documented names) for each kind: a full queue and a model
# that is loading or a server draining both mean "try again later", Anthropic's overloaded.
ANTHROPIC_ERROR_TYPES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_INPUT: "invalid_request_error",
    ErrorKind.UNSUPPORTED: "invalid_request_error",
    ErrorKind.UNAUTHENTICATED: "authentication_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.TOO_LARGE: "request_too_large",
    ErrorKind.OVERLOADED: "overloaded_error",
    ErrorKind.NOT_IMPLEMENTED: "api_error",
    ErrorKind.NOT_READY: "overloaded_error",
    ErrorKind.INTERNAL: "api_error",
}


def anthropic_body(kind: ErrorKind, message: str, param: str | None = None) -> dict[str, Any]:
    """Anthropic's shape: {"type": "error", "error": {"type", "message"}} (no param field:
    the message names the field)."""
    return {
        "type": "error",
        "error": {"type": ANTHROPIC_ERROR_TYPES[kind], "message": wire_message(message)},
    }


# text-embeddings-inference's status and `error_type` for each kind: an input over the length
# limit or a batch over the size limit is 413 "validation", a model that does not serve the
# route 424 "backend", a full queue 429 "overloaded", an unhealthy server 503 "unhealthy". A
# body that is not JSON or does not fit the schema is 400 "validation" (TEI's JSON extractor
# answers 400 or 422, in plain text; this runtime answers bad bodies 400 on every protocol).
# Kinds TEI never answers (it names no model, takes no key) keep the runtime's status.
TEI_ERROR_TABLE: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.INVALID_INPUT: (400, "validation"),
    ErrorKind.UNSUPPORTED: (424, "backend"),
    ErrorKind.UNAUTHENTICATED: (401, "validation"),
    ErrorKind.NOT_FOUND: (404, "validation"),
    ErrorKind.TOO_LARGE: (413, "validation"),
    ErrorKind.OVERLOADED: (429, "overloaded"),
    ErrorKind.NOT_IMPLEMENTED: (501, "backend"),
    ErrorKind.NOT_READY: (503, "unhealthy"),
    ErrorKind.INTERNAL: (500, "backend"),
}
# TEI's answer to an empty batch ("`texts` cannot be empty"): 400, error_type "empty".
TEI_EMPTY = (400, "empty")


def tei_body(kind: ErrorKind, message: str, param: str | None = None) -> dict[str, Any]:
    """TEI's shape: {"error": "<message>", "error_type": "validation"} (no param field)."""
    return {"error": wire_message(message), "error_type": TEI_ERROR_TABLE[kind][1]}


def tei_status(kind: ErrorKind) -> int:
    return TEI_ERROR_TABLE[kind][0]


BodyBuilder = Callable[[ErrorKind, str, "str | None"], dict[str, Any]]
StatusOf = Callable[[ErrorKind], int]


def error_response(
    kind: ErrorKind,
    message: str,
    param: str | None,
    body: BodyBuilder,
    headers: dict[str, str] | None = None,
    status: StatusOf = status_for,
) -> JSONResponse:
    return JSONResponse(
        status_code=status(kind), content=body(kind, message, param), headers=headers
    )


# The first element of a FastAPI validation error's location: where the value was sent.
_LOCATIONS = ("body", "query", "path", "header", "cookie")


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One readable line from pydantic's errors, plus the first offending field."""
    parts, param = [], None
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "decode error")
            parts.append(f"Invalid JSON: request body is not valid JSON ({detail})")
            continue
        if err.get("type") == "model_attributes_type" and tuple(err.get("loc", ())) == ("body",):
            parts.append("request body must be a JSON object (Content-Type: application/json)")
            continue
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:  # where FastAPI found it, not a field ("query" is one)
            loc = loc[1:]
        field = ".".join(loc)
        param = param or (loc[0] if loc else None)
        parts.append(f"{field}: {err.get('msg')}" if field else str(err.get("msg")))
    return "; ".join(parts) or "invalid request", param


def install_error_handlers(app: FastAPI, body: BodyBuilder, status: StatusOf = status_for) -> None:
    """Make `app` answer every error in `body`'s shape, with the status from ERROR_TABLE
    (or `status`: TEI's)."""

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HFRuntimeError)
        if exc.kind is ErrorKind.INTERNAL:
            logger.error("internal error on %s: %s", shorten(request.url.path, 200), exc.message)
        return error_response(exc.kind, exc.message, exc.param, body, status=status)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = validation_message(exc)
        return error_response(ErrorKind.INVALID_INPUT, message, param, body, status=status)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = _STATUS_TO_KIND.get(exc.status_code, ErrorKind.INTERNAL)
        content = body(kind, str(exc.detail), None)
        if isinstance(content.get("error"), dict) and "code" in content["error"]:
            # OpenAI's body repeats the real status
            content["error"]["code"] = exc.status_code
        # Keep the exception's headers: 405's `Allow`, 413's `Connection: close`.
        return JSONResponse(status_code=exc.status_code, content=content, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug: log it with the traceback, answer 500 without leaking internals.
        logger.exception("unhandled error on %s", shorten(request.url.path, 200), exc_info=exc)
        return error_response(
            ErrorKind.INTERNAL,
            f"Internal server error: {type(exc).__name__}",
            None,
            body,
            status=status,
        )

    app.add_exception_handler(HFRuntimeError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
