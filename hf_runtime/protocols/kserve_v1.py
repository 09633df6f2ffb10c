"""KServe V1 REST routes, as a FastAPI sub-app.

Mount it at "/v1": routes are declared relative to the mount. `GET /models` and
`GET /models/{name}` answer one body that both KServe and OpenAI clients accept, because the
OpenAI routes share the "/v1" prefix. Bad requests that KServe answers with 500 (a missing
"instances" key, non-string items, integers past Python's digit limit) are 400 here.

A thin adapter: bodies go through the `v1_json` codec, models through the data plane.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hf_runtime.dataplane import DataPlane
from hf_runtime.errors import InvalidInput, ModelNotReady, NotImplementedFeature
from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.codecs import v1_json
from hf_runtime.protocols.errors import install_error_handlers, kserve_body
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES, JSONBodyError, decode_json
from hf_runtime.types import TextPair

OWNED_BY = "hf-runtime"


def make_app(registry: ModelRegistry) -> FastAPI:
    """The V1 sub-app over `registry`; mount it at "/v1"."""
    app = FastAPI(title="KServe V1", docs_url=None, redoc_url=None)
    install_error_handlers(app, kserve_body)
    plane = DataPlane(registry)
    created = int(time.time())  # OpenAI's `created`: when this server started

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": OWNED_BY}

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        names = plane.model_names()
        return {"models": names, "object": "list", "data": [model_card(n) for n in names]}

    @app.get("/models/{name}")
    async def model_status(name: str) -> dict[str, Any]:
        if not plane.model_ready(name):
            raise ModelNotReady(name)  # KServe: 503 while not ready
        return {"name": name, "ready": True, **model_card(name)}

    @app.post("/models/{name}:predict")
    async def predict(name: str, request: Request) -> JSONResponse:
        plane.check_inference(name)  # before reading: a loading model answers 503, whatever came
        instances, parameters = await read_request(await request.body())
        prediction = await plane.predict(name, instances, parameters)
        return JSONResponse(v1_json.encode_prediction(prediction))

    @app.post("/models/{name}:explain")
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


def parse_instances(body: bytes) -> list[str] | list[TextPair]:
    """A V1 request body -> the texts (or text pairs) to predict on. Raises InvalidInput with
    the reason."""
    return parse_request(body)[0]
