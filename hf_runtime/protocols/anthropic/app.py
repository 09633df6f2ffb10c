"""The Anthropic Messages API as one FastAPI app (mounted at /v1); Anthropic's error shape."""

from __future__ import annotations

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.anthropic.messages import messages_router
from hf_runtime.protocols.errors import anthropic_body, install_error_handlers


def make_app(registry: ModelRegistry) -> FastAPI:
    app = FastAPI(title="hf-runtime Anthropic Messages API", docs_url=None, redoc_url=None)
    install_error_handlers(app, anthropic_body)
    app.include_router(messages_router(registry))
    return app
