"""The HTTP floor: a trivial route, with no model behind it, served three ways.

  - bare uvicorn (`python -m benchmarks.peers.floor --port P`): what HTTP parsing, ASGI and one
    FastAPI route cost at least;
  - mounted in `bentoml serve` (peers/floor_service.py, BENCH_FLOOR_MODE=bentoml): plus
    BentoML's per-request middlewares and router;
  - the same with hf-runtime's gateway and its BentoML fast path (BENCH_FLOOR_MODE=fast-path),
    or with the gateway alone (gateway).
The route reads the body and answers a fixed KServe-shaped body, so the load generator and
the request are those of the encoder runs. How much of the model's ceiling a floor leaves:
a request costs the floor's CPU plus the model's, so at best a server reaches
floor / (floor + ceiling) of the ceiling (both in requests per second on the same cores).
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Request, Response

TRIVIAL_PATH = "/v1/models/trivial:predict"
TRIVIAL_BODY = b'{"predictions":[[0.0]]}'


def make_trivial_app() -> FastAPI:
    app = FastAPI(title="trivial", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b"ok")

    @app.post(TRIVIAL_PATH)
    async def predict(request: Request) -> Response:
        await request.body()
        return Response(TRIVIAL_BODY, media_type="application/json")

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="the trivial route under bare uvicorn")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # As BentoML's worker runs uvicorn (httptools and uvloop when installed), minus BentoML.
    uvicorn.run(
        make_trivial_app(), host="127.0.0.1", port=args.port, log_level="warning",
        access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
