"""The OpenAI-compatible API as one FastAPI app (mounted at /openai/v1 and at /v1), and the
root app serving some of its routes outside those prefixes (at two of them, TEI's bodies
too: protocols.tei.shared_paths)."""

from __future__ import annotations

import time

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.errors import install_error_handlers, openai_body
from hf_runtime.protocols.openai.chat import chat_router
from hf_runtime.protocols.openai.completions import completions_router
from hf_runtime.protocols.openai.embeddings import embeddings_router
from hf_runtime.protocols.openai.lora import lora_router
from hf_runtime.protocols.openai.models import models_router
from hf_runtime.protocols.openai.pooling import pooling_router
from hf_runtime.protocols.openai.responses_api.routes import responses_router
from hf_runtime.protocols.openai.responses_api.store import ResponseStore
from hf_runtime.protocols.openai.scoring import scoring_router
from hf_runtime.protocols.openai.tokenize import tokenize_router
from hf_runtime.protocols.tei.shared_paths import shared_paths_router
from hf_runtime.routes import TEI_SHARED_PATHS


def make_app(registry: ModelRegistry, response_store: ResponseStore | None = None) -> FastAPI:
    """Routes are relative (`POST /chat/completions`, ...); every error has OpenAI's shape.
    `response_store`: where the Responses API keeps responses (default: the default bounds)."""
    app = FastAPI(title="hf-runtime OpenAI-compatible API", docs_url=None, redoc_url=None)
    install_error_handlers(app, openai_body)
    created = int(time.time())
    app.include_router(completions_router(registry))
    app.include_router(chat_router(registry))
    store = ResponseStore() if response_store is None else response_store  # len() 0 is falsy
    app.state.response_store = store
    app.include_router(responses_router(registry, store))
    app.include_router(embeddings_router(registry))
    app.include_router(scoring_router(registry))
    app.include_router(tokenize_router(registry))
    app.include_router(models_router(registry, created))
    app.include_router(lora_router(registry))
    return app


def make_root_app(registry: ModelRegistry, title: str) -> FastAPI:
    """The OpenAI routes that clients of vLLM, Jina and Cohere call outside "/v1", at their
    root aliases (hf_runtime.routes); vLLM's pooling routes are served only there."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    install_error_handlers(app, openai_body)
    # The root /rerank and /tokenize take TEI's bodies too (told apart by the body).
    app.include_router(shared_paths_router(registry))
    app.include_router(scoring_router(registry, root=True, skip=TEI_SHARED_PATHS))
    app.include_router(tokenize_router(registry, root=True, skip=TEI_SHARED_PATHS))
    app.include_router(pooling_router(registry, root=True))
    return app
