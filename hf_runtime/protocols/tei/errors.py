"""TEI's error answers: protocols.errors' TEI table, plus TEI's 400 "empty"."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hf_runtime.errors import HFRuntimeError, InvalidInput
from hf_runtime.protocols.errors import (
    TEI_EMPTY,
    error_response,
    install_error_handlers,
    tei_body,
    tei_status,
    wire_message,
)


class EmptyBatch(InvalidInput):
    """A batch with nothing in it: TEI's 400 "empty" ("Batch is empty")."""


def tei_error(exc: HFRuntimeError) -> JSONResponse:
    """`exc` in TEI's shape and status."""
    if isinstance(exc, EmptyBatch):
        status, error_type = TEI_EMPTY
        return JSONResponse({"error": wire_message(exc.message), "error_type": error_type}, status)
    return error_response(exc.kind, exc.message, exc.param, tei_body, status=tei_status)


def install_tei_error_handlers(app: FastAPI) -> None:
    install_error_handlers(app, tei_body, tei_status)

    async def on_empty(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EmptyBatch)
        return tei_error(exc)

    app.add_exception_handler(EmptyBatch, on_empty)
