"""A fake loopback server for the benchmark harness tests: real HTTP, no model.

Run as a process too: python -m tests.benchmarks.fake_server PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

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

    @app.post("/slow")
    async def slow() -> JSONResponse:
        await asyncio.sleep(30)
        return JSONResponse({"predictions": []})

    @app.post("/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            chunk = {"choices": [{"index": 0, "delta": {"content": "first"}}]}
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(30)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    import uvicorn

    uvicorn.run(make_fake_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
