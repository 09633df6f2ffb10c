"""Strict JSON request bodies, decoded off the event loop when they are large.

Every protocol decodes bodies with `decode_json`, so every route refuses the same things with a
400 in its own error shape instead of a 500 or a silently odd value:
  - invalid JSON, invalid UTF-8, nesting deeper than the interpreter's recursion limit;
  - `NaN`, `Infinity` and `-Infinity` (not JSON, though Python's json module accepts them);
  - numbers that overflow a float (`1e999` would become `inf`);
  - integers of more than 40 digits (a 128-bit value has 39): nothing in these protocols holds
    more, and Python's int-digit limit (4300) would otherwise raise a ValueError nothing
    expects. Smaller out-of-range values are left to each field's own check, whose error
    names the field (`seed` must fit in 64 bits, an INT8 tensor element in 8).

`decode_json_body` runs `decode_json` in a worker thread for bodies over `LARGE_BODY_BYTES`
and inline for smaller ones, where a thread hop would cost more than the decode. The C
decoder never lets go of the GIL by itself; the number hooks below are Python functions, so
the thread yields the GIL at each number and the loop keeps running while a large numeric body
(token ids, tensors) decodes. A body made only of strings decodes at memory speed anyway.

FastAPI decodes the body of a route with a pydantic body model itself; `JSONBodyRoute` makes it
call `decode_json_body` instead (FastAPI's documented custom-Request pattern), keeping the body
model, its validation and its OpenAPI schema as they are. `LeanJSONRoute` (the encoder routes'
hot path) goes further for a well-formed small JSON body: decoded here, validated by its model
and handed to the endpoint, without FastAPI's per-request dependency solving; anything else
takes FastAPI's own path, so every refusal is answered exactly as before.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

LARGE_BODY_BYTES = 64 * 1024
# Response values (floats, scores, entries) written on the event loop; a response with more is
# written in a worker thread (a one-sentence embedding has 384: orjson writes it in ~5 µs).
INLINE_RESPONSE_VALUES = 8192
MAX_INT_DIGITS = 40
_SHOWN_CHARS = 24  # how much of a refused literal an error message repeats


class JSONBodyError(json.JSONDecodeError):
    """A body `decode_json` refuses. A JSONDecodeError so FastAPI reports it as invalid JSON
    (its `json_invalid` error, a 400 in the protocol's shape); `str()` is the reason alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)

    def __str__(self) -> str:
        return self.msg


class _Refused(ValueError):
    """Raised by the decoder hooks; turned into JSONBodyError by decode_json."""


def _literal(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"


def _parse_int(text: str) -> int:
    # Counted before converting: int() of a long literal costs quadratic time.
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer {_literal(text)} has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {_literal(text)} is out of the range of a 64-bit float")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not valid JSON: numbers must be finite")


def decode_json(body: bytes | str) -> Any:
    """`body` decoded; raises JSONBodyError (a json.JSONDecodeError) with a client-readable
    reason for anything invalid or refused (see the module docstring)."""
    try:
        return json.loads(
            body,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except _Refused as exc:
        raise JSONBodyError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise JSONBodyError(str(exc)) from None  # keeps "line 1 column 5 (char 4)"
    except UnicodeDecodeError as exc:
        raise JSONBodyError(
            f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except RecursionError:
        raise JSONBodyError("the JSON is nested too deeply") from None
    except ValueError as exc:  # any other conversion limit of the decoder
        raise JSONBodyError(f"unreadable JSON value ({exc})") from None


async def decode_json_body(body: bytes) -> Any:
    """decode_json, in a worker thread when `body` is large enough to hold up the loop."""
    if len(body) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(decode_json, body)
    return decode_json(body)


def json_bytes(payload: Any) -> bytes:
    """A response body as compact JSON (orjson; numpy values as their Python ones)."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # what orjson does not write (integers past 64 bits): the stdlib does
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def render_response(write: Callable[..., bytes], *args: Any, values: int) -> bytes:
    """`write(*args)` on the loop for a response of at most INLINE_RESPONSE_VALUES values,
    where a thread hop would cost more than the writing; in a worker thread otherwise."""
    if values <= INLINE_RESPONSE_VALUES:
        return write(*args)
    return await asyncio.to_thread(write, *args)


class JSONBodyRequest(Request):
    """A Request whose `json()` is `decode_json_body` (FastAPI calls it for JSON bodies)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = await decode_json_body(await self.body())
        return self._json


class JSONBodyRoute(APIRoute):
    """An APIRoute whose handler sees a JSONBodyRequest; use it as a router's `route_class`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def decode_off_loop(request: Request) -> Response:
            return await handler(JSONBodyRequest(request.scope, request.receive))

        return decode_off_loop


class LeanJSONRoute(JSONBodyRoute):
    """A JSONBodyRoute for `async def endpoint(<body>: <pydantic model>, request: Request)`
    returning a Response, with string path parameters at most. A request with an
    `application/json` body of at most LARGE_BODY_BYTES that decodes (decode_json) to an object
    its model accepts is validated here (`model_validate`, as FastAPI validates a body) and
    handed to the endpoint directly; any other request, and every route of another shape,
    goes through FastAPI as a JSONBodyRoute, which answers errors as it always has."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = APIRoute.get_route_handler(self)  # FastAPI's, called with a JSONBodyRequest
        shape = _lean_shape(self)
        if shape is None:
            return super().get_route_handler()
        name, model = shape
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            json_request = JSONBodyRequest(request.scope, request.receive)
            value = _lean_body(json_request, await json_request.body(), model)
            if value is None:
                return await standard(json_request)  # the body is read once and kept
            response: Response = await endpoint(
                **json_request.path_params, **{name: value}, request=json_request
            )
            return response

        return handler


def _lean_shape(route: APIRoute) -> tuple[str, type[BaseModel]] | None:
    """(body parameter, its model) when the route has LeanJSONRoute's shape, else None."""
    field, dependant = route.body_field, route.dependant
    if field is None or dependant.request_param_name != "request":
        return None
    if dependant.query_params or dependant.header_params or dependant.cookie_params:
        return None
    if dependant.dependencies or len(dependant.body_params) != 1:
        return None
    if any(param.field_info.annotation is not str for param in dependant.path_params):
        return None
    model = field.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return field.name, model


def _lean_body(request: JSONBodyRequest, body: bytes, model: type[BaseModel]) -> Any:
    """The validated body model, or None: FastAPI's own path decides (and words any error)."""
    content_type = request.headers.get("content-type", "")
    if not body or len(body) > LARGE_BODY_BYTES:
        return None
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return None
    try:
        payload = decode_json(body)
    except JSONBodyError:
        return None
    request._json = payload  # FastAPI's path (if it comes to that) decodes no more
    if not isinstance(payload, dict):
        return None
    try:
        return model.model_validate(payload)
    except ValidationError:
        return None
