"""KServe V1 REST routes, as a FastAPI sub-app.

Mount it at "/v1": routes are declared relative to the mount. `GET /models` and
`GET /models/{name}` answer one body that both KServe and OpenAI clients accept, because the
OpenAI routes share the "/v1" prefix. Bad requests that KServe answers with 500 (a missing
"instances" key, non-string items, integers past Python's digit limit) are 400 here.

A thin adapter: bodies go through the `v1_json` codec, models through the data plane.

Predict is the encoder hot path, so its route is a `LeanRoute`: documented by FastAPI from its
signature like any route, but called as a plain Starlette handler (no dependency solving, no
pydantic per request), and its bodies are read and written with orjson.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response

from hf_runtime.dataplane import DataPlane
from hf_runtime.errors import InvalidInput, NotImplementedFeature
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols import json_body
from hf_runtime.protocols.codecs import v1_json
from hf_runtime.protocols.disconnect import cancel_on_disconnect
from hf_runtime.protocols.errors import install_error_handlers, kserve_body
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES, JSONBodyError
from hf_runtime.protocols.lean_route import LeanRoute
from hf_runtime.protocols.model_cards import model_card
from hf_runtime.routes import V1_EXPLAIN, V1_MODEL, V1_MODELS, V1_PREDICT
from hf_runtime.types import TextPair


def make_app(registry: ModelRegistry) -> FastAPI:
    """The V1 sub-app over `registry`; mount it at "/v1"."""
    app = FastAPI(title="KServe V1", docs_url=None, redoc_url=None)
    install_error_handlers(app, kserve_body)
    plane = DataPlane(registry)
    created = int(time.time())  # OpenAI's `created`: when this server started

    def card(name: str) -> dict[str, Any]:
        return model_card(registry.get(name), created)

    @app.get(V1_MODELS.path)
    async def list_models() -> dict[str, Any]:
        names = plane.model_names()
        return {"models": names, "object": "list", "data": [card(n) for n in names]}

    @app.get(V1_MODEL.path)
    async def model_status(name: str) -> dict[str, Any]:
        plane.require_ready(name)  # KServe: 503 while not ready; a FAILED model says why
        return {"name": name, "ready": True, **card(name)}

    hot = APIRouter(route_class=LeanRoute)

    @hot.post(V1_PREDICT.path)
    async def predict(name: str, request: Request) -> Response:
        plane.check_inference(name)  # before reading: a loading model answers 503, whatever came
        instances, parameters = await read_request(await request.body())
        prediction = await cancel_on_disconnect(request, plane.predict(name, instances, parameters))
        if isinstance(prediction, Response):  # the client left: its work was dropped
            return prediction
        return Response(v1_json.prediction_json(prediction), media_type="application/json")

    app.include_router(hot)

    @app.post(V1_EXPLAIN.path)
    async def explain(name: str) -> None:
        plane.model_ready(name)  # an unknown model is still a 404
        raise NotImplementedFeature(
            "Explanations are not supported: hf-runtime serves no explainer."
        )

    return app


V1Request = tuple[list[str] | list[TextPair], dict[str, Any] | None]


async def read_request(body: bytes) -> V1Request:
    """parse_request, in a worker thread when the body is large: decoding and checking
    megabytes of instances would hold up every other request on the event loop."""
    if len(body) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(parse_request, body)
    return parse_request(body)


def parse_request(body: bytes) -> V1Request:
    """A V1 request body -> the texts (or text pairs) to predict on, and its optional
    `parameters` (output options, checked by the data plane). Raises InvalidInput."""
    try:
        payload = decode_json(body)
    except JSONBodyError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None
    return v1_json.decode_instances(payload), v1_json.decode_parameters(payload)


def decode_json(body: bytes) -> Any:
    """json_body.decode_json's answer for every body, orjson's speed for the hot path's.

    For strings, arrays, objects, booleans and null orjson and decode_json agree; numbers are
    where decode_json is stricter (orjson reads a 41-digit integer as a float). So a body
    without numbers (`{"instances": ["text"]}`) is orjson's, and one with a number, or one
    orjson refuses, goes through decode_json, which accepts or refuses it as before, with its
    reason (JSONBodyError)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json_body.decode_json(body)
    return json_body.decode_json(body) if _has_number(payload) else payload


def _has_number(payload: Any) -> bool:
    todo = [payload]
    while todo:
        value = todo.pop()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
    return False


def parse_instances(body: bytes) -> list[str] | list[TextPair]:
    """A V1 request body -> the texts (or text pairs) to predict on. Raises InvalidInput with
    the reason."""
    return parse_request(body)[0]
