"""KServe V1 REST routes, as a FastAPI sub-app.

Mount it at "/v1": routes are declared relative to the mount. `GET /models` and
`GET /models/{name}` answer one body that both KServe and OpenAI clients accept, because the
OpenAI routes share the "/v1" prefix. Bad requests that KServe answers with 500 (a missing
"instances" key, non-string items, integers past Python's digit limit) are 400 here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hf_runtime.errors import InvalidInput, ModelNotReady, NotImplementedFeature
from hf_runtime.model import ModelRegistry, ServedModel
from hf_runtime.protocols.errors import install_error_handlers, kserve_body
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES, JSONBodyError, decode_json
from hf_runtime.protocols.v2_codec import encode_json_value, encode_output_json

OWNED_BY = "hf-runtime"


def make_app(registry: ModelRegistry) -> FastAPI:
    """The V1 sub-app over `registry`; mount it at "/v1"."""
    app = FastAPI(title="KServe V1", docs_url=None, redoc_url=None)
    install_error_handlers(app, kserve_body)
    created = int(time.time())  # OpenAI's `created`: when this server started

    def model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": OWNED_BY}

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        names = registry.names()
        return {"models": names, "object": "list", "data": [model_card(n) for n in names]}

    @app.get("/models/{name}")
    async def model_status(name: str) -> dict[str, Any]:
        model = registry.get(name)
        if not model.ready:
            raise ModelNotReady(name)  # KServe: 503 while not ready
        return {"name": model.name, "ready": True, **model_card(model.name)}

    @app.post("/models/{name}:predict")
    async def predict(name: str, request: Request) -> JSONResponse:
        model = registry.get(name)
        if not model.ready:
            raise ModelNotReady(name)
        instances = await read_instances(await request.body())
        return JSONResponse(await _predict_body(model, instances))

    @app.post("/models/{name}:explain")
    async def explain(name: str) -> None:
        registry.get(name)  # an unknown model is still a 404
        raise NotImplementedFeature(
            "Explanations are not supported: hf-runtime serves no explainer."
        )

    return app


async def read_instances(body: bytes) -> list[str]:
    """parse_instances, in a worker thread when the body is large: decoding and checking
    megabytes of instances would hold up every other request on the event loop."""
    if len(body) > LARGE_BODY_BYTES:
        return await asyncio.to_thread(parse_instances, body)
    return parse_instances(body)


def parse_instances(body: bytes) -> list[str]:
    """A V1 request body -> the texts to predict on. Raises InvalidInput with the reason."""
    try:
        payload = decode_json(body)
    except JSONBodyError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None
    return instances_of(payload)


def instances_of(payload: Any) -> list[str]:
    """The texts of a decoded V1 body, or InvalidInput naming what is wrong."""
    if not isinstance(payload, dict):
        raise InvalidInput(
            'the request body must be a JSON object like {"instances": ["text", ...]}'
        )
    if "instances" in payload and "inputs" in payload:
        raise InvalidInput('give either "instances" or "inputs", not both', param="instances")
    key = "instances" if "instances" in payload else "inputs"
    if key not in payload:
        raise InvalidInput(
            'missing "instances": expected {"instances": ["text", ...]}', param="instances"
        )
    instances = payload[key]
    if isinstance(instances, str):  # KServe tokenizes a bare string as one text
        return [instances]
    if not isinstance(instances, list):
        raise InvalidInput(
            f'"{key}" must be a list of strings, got {type(instances).__name__}', param=key
        )
    if not instances:
        raise InvalidInput(f'"{key}" is empty: give at least one text', param=key)
    for index, item in enumerate(instances):
        if not isinstance(item, str):
            raise InvalidInput(
                f'"{key}[{index}]" must be a string, got {type(item).__name__}', param=key
            )
    return instances


async def _predict_body(model: ServedModel, instances: list[str]) -> dict[str, Any]:
    prediction = await model.predict(instances)
    body: dict[str, Any] = {"predictions": encode_json_value(prediction.predictions)}
    if len(prediction.tensors) > 1:
        # KServe's quirk: extra tensors (offset_mapping) ride along in V2 form under "outputs".
        body["outputs"] = [encode_output_json(t) for t in prediction.tensors[1:]]
    return body
