"""A fake loopback server for the benchmark harness tests: real HTTP, no model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

FAKE_TOKENS_PER_STREAM = 5


def make_fake_app() -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/models/minilm:predict")
    async def predict(request: Request) -> JSONResponse:
        instances = json.loads(await request.body())["instances"]
        await asyncio.sleep(0.002)
        return JSONResponse({"predictions": [[1.0, 0.0] for _ in instances]})

    @app.post("/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"error": "always fails"}, status_code=500)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        body = json.loads(await request.body())

        async def events() -> AsyncIterator[str]:
            for i in range(FAKE_TOKENS_PER_STREAM):
                await asyncio.sleep(0.001)
                chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 3, "completion_tokens": FAKE_TOKENS_PER_STREAM}
                yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    """The fake app under uvicorn on a free loopback port, in a background thread."""
    import uvicorn

    from benchmarks.servers import free_port

    port = free_port()
    config = uvicorn.Config(make_fake_app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the tiny BERT encoder (faster than building every tiny model)."""
    from tests.tiny_models import build_bert_embed

    out = tmp_path_factory.mktemp("bench-tiny") / "bert-embed"
    build_bert_embed(out)
    return out
