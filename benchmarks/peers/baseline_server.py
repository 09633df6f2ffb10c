"""The per-request baseline: a minimal KServe-style server, the way many are written.

One HTTP request is one forward pass, run synchronously inside the `async def` handler on the
event loop: while a request computes, no other request is even parsed, so concurrency buys
nothing. This is deliberately naive; it is the reference hf-runtime's batching is measured
against, not code to imitate.

Run: python -m benchmarks.peers.baseline_server --port 8081 [--model-dir DIR] [--dtype float32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from benchmarks.core.workload import ENCODER_MODEL_NAME, minilm_dir
from benchmarks.peers.minilm import DTYPES, embed, load_minilm, read_instances


def make_app(model_dir: Path, dtype: str = "float32") -> FastAPI:
    tokenizer, model = load_minilm(model_dir, dtype)
    app = FastAPI(title="per-request baseline", docs_url=None, redoc_url=None)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post(f"/v1/models/{ENCODER_MODEL_NAME}:predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            instances = read_instances(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        # Blocking on purpose: the naive pattern this baseline stands for.
        vectors = embed(tokenizer, model, instances)
        return JSONResponse({"predictions": vectors.tolist()})

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    args = parser.parse_args(argv)
    app = make_app(args.model_dir or minilm_dir(), args.dtype)
    # Loopback only: this server exists to be measured from the same machine.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
