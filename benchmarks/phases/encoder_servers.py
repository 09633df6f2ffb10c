"""The encoder servers a run measures and the routes it asks each for an embedding.

Each server is started, checked for a correct answer (check_answer), loaded at every level and
stopped (phases/encoder.py); the paired rounds (phases/encoder_paired.py) start the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.core import names
from benchmarks.core.settings import Settings
from benchmarks.core.workload import (
    BENTOML_EMBED_PATH,
    ENCODER_MODEL_NAME,
    OPENAI_EMBEDDINGS_PATH,
    OPENAI_PREFIXED_EMBEDDINGS_PATH,
    RERANK_PATH,
    SCORE_PATH,
    V1_PREDICT_PATH,
    V2_INFER_PATH,
    bentoml_embed_body,
    embeddings_body,
    rerank_body,
    score_body,
    v1_predict_body,
    v2_infer_body,
)
from benchmarks.loadgen.pyload import BodyFactory
from benchmarks.peers.floor import TRIVIAL_PATH
from benchmarks.peers.servers import (
    HF_RUNTIME_LOAD_FAILED,
    NO_GRPC,
    baseline_command,
    bentoml_batching_command,
    config_subset,
    floor_bentoml_command,
    floor_uvicorn_command,
    hf_runtime_command,
    source_tree,
)


@dataclass(frozen=True)
class Route:
    """One way to ask a server for an embedding; each route measured becomes one run."""

    server: str  # the run's name in the results
    path: str
    body: BodyFactory
    # The embedding of sentence(0) in an answer; None: nothing to check but a 200 (the HTTP
    # floor, the scoring routes).
    first_vector: Callable[[Any], list[float]] | None
    texts: int = 1  # sentences the model embeds per request (a score pair: 2)


def v1_route(server: str) -> Route:
    return Route(server, V1_PREDICT_PATH, v1_predict_body, lambda body: body["predictions"][0])


def hf_runtime_routes(server: str) -> tuple[Route, ...]:
    """Every encoder route hf-runtime serves MiniLM on (V1 predict first, named `server`; the
    others `server` plus the route): what the per-route rows set against the ceiling."""

    def openai_vector(body: Any) -> list[float]:
        return list(body["data"][0]["embedding"])

    def v2_vector(body: Any) -> list[float]:
        data = body["outputs"][0]["data"]  # row-major: the first row is sentence(0)'s
        return list(data[0]) if data and isinstance(data[0], list) else list(data)

    return (
        v1_route(server),
        Route(f"{server} {OPENAI_EMBEDDINGS_PATH}", OPENAI_EMBEDDINGS_PATH, embeddings_body,
              openai_vector),
        Route(f"{server} {OPENAI_PREFIXED_EMBEDDINGS_PATH}", OPENAI_PREFIXED_EMBEDDINGS_PATH,
              embeddings_body, openai_vector),
        Route(f"{server} V2 infer", V2_INFER_PATH, v2_infer_body, v2_vector),
        Route(f"{server} {SCORE_PATH}", SCORE_PATH, score_body, None, texts=2),
        Route(f"{server} {RERANK_PATH}", RERANK_PATH, rerank_body, None, texts=2),
    )  # fmt: skip


@dataclass(frozen=True)
class EncoderServer:
    name: str
    command: Callable[[int], list[str]]
    routes: tuple[Route, ...]
    env: dict[str, str] = field(default_factory=dict)
    fail_marker: str | None = None
    cwd: Path | None = None  # the source tree it runs from (None: this one)
    concurrencies: tuple[int, ...] | None = None  # None: every --concurrency
    ready_path: str = "/readyz"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5
    return dot / norms if norms else 0.0


def check_answer(url: str, route: Route, reference: Sequence[float]) -> float | None:
    """The server must embed sentence(0) as MiniLM does in-process; returns the cosine (None
    for a route with nothing to check, which must still answer 200)."""
    response = httpx.post(
        url + route.path, content=route.body(0), timeout=120,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    response.raise_for_status()
    if route.first_vector is None:
        return None
    vector = route.first_vector(response.json())
    if len(vector) != len(reference):
        raise ValueError(f"expected a {len(reference)}-float embedding, got {len(vector)} values")
    cosine = _cosine(vector, reference)
    if cosine < 0.99:
        raise ValueError(f"the server's embedding is not MiniLM's (cosine {cosine:.4f})")
    return cosine


def encoder_servers(s: Settings, dtype: str, main_dtype: bool) -> list[EncoderServer]:
    servers: list[EncoderServer] = []
    if main_dtype:  # the per-request and BentoML comparisons run at the first dtype only
        servers.append(
            EncoderServer(names.BASELINE, baseline_command(dtype), (v1_route(names.BASELINE),))
        )
        if "bentoml-batching" in s.variants:
            # Its V1 route (through self.to_async) and, in the same process, BentoML's own
            # batchable endpoint called directly: the second isolates the batching itself.
            embed_route = Route(
                names.BENTOML_BATCHING_DIRECT, BENTOML_EMBED_PATH, bentoml_embed_body,
                lambda body: body[0],
            )  # fmt: skip
            servers.append(EncoderServer(
                names.BENTOML_BATCHING, bentoml_batching_command(),
                (v1_route(names.BENTOML_BATCHING), embed_route), env={"BENCH_DTYPE": dtype},
            ))  # fmt: skip
    servers += hf_runtime_encoder_servers(s, dtype, before=main_dtype and bool(s.before))
    if main_dtype and s.floor:
        servers += _floor_servers(s)
    return servers


def hf_runtime_encoder_servers(s: Settings, dtype: str, *, before: bool) -> list[EncoderServer]:
    """hf-runtime serving MiniLM, and with `before` the same from --before's commit."""
    # MiniLM alone: the encoder runs need nothing else, and the config a --before commit reads
    # must not hold keys that commit does not know (the other models' newer settings).
    minilm = config_subset(s.config, [ENCODER_MODEL_NAME], s.out_dir / "logs.tmp" / "minilm.yaml")
    servers = [EncoderServer(
        names.HF_RUNTIME, hf_runtime_command(minilm), (v1_route(names.HF_RUNTIME),),
        env={"HF_RUNTIME_DTYPE": dtype, **NO_GRPC}, fail_marker=HF_RUNTIME_LOAD_FAILED,
    )]  # fmt: skip
    if before and s.before:
        # The same server from another commit: before/after measured by the same load
        # generator on the same machine within minutes.
        tree = source_tree(s.before, s.out_dir / "before.tmp")
        servers.append(EncoderServer(
            names.HF_RUNTIME_BEFORE, hf_runtime_command(minilm),
            (v1_route(names.HF_RUNTIME_BEFORE),), cwd=tree, fail_marker=HF_RUNTIME_LOAD_FAILED,
            env={"HF_RUNTIME_DTYPE": dtype, "PYTHONPATH": str(tree), **NO_GRPC},
        ))  # fmt: skip
    return servers


def _floor_servers(s: Settings) -> list[EncoderServer]:
    """The trivial route (peers/floor.py) in bare uvicorn and in bentoml serve, at the
    lowest and highest concurrency."""
    levels = tuple(sorted({min(s.concurrencies), max(s.concurrencies)}))

    def route(name: str) -> tuple[Route, ...]:
        return (Route(name, TRIVIAL_PATH, v1_predict_body, None),)

    servers = [
        EncoderServer(names.FLOOR_UVICORN, floor_uvicorn_command(), route(names.FLOOR_UVICORN),
                      concurrencies=levels),
    ]  # fmt: skip
    for name, mode in names.FLOOR_BENTOML_MODES.items():
        servers.append(EncoderServer(
            name, floor_bentoml_command(), route(name), env={"BENCH_FLOOR_MODE": mode},
            concurrencies=levels,
        ))  # fmt: skip
    return servers
