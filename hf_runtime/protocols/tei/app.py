"""TEI's routes as one FastAPI app, mounted at the root; every error in TEI's shape."""

from __future__ import annotations

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.tei.embed import embed_router
from hf_runtime.protocols.tei.embed_sparse import embed_sparse_router
from hf_runtime.protocols.tei.errors import install_tei_error_handlers
from hf_runtime.protocols.tei.info import info_router
from hf_runtime.protocols.tei.predict import predict_router
from hf_runtime.protocols.tei.tokens import decode_router

TITLE = "hf-runtime text-embeddings-inference (TEI) API"


def make_app(registry: ModelRegistry) -> FastAPI:
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None)
    install_tei_error_handlers(app)
    app.include_router(embed_router(registry))
    app.include_router(embed_sparse_router(registry))
    app.include_router(predict_router(registry))
    app.include_router(decode_router(registry))
    app.include_router(info_router(registry))
    return app
