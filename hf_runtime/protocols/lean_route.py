"""The encoder hot path's route class for handlers that read their own body (V1 predict, V2
infer): documented by FastAPI like any route, called as a plain Starlette handler."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class LeanRoute(APIRoute):
    """An APIRoute FastAPI documents from its endpoint's signature, called without FastAPI's
    per-request machinery: the endpoint gets the path parameters as strings and the Request,
    and returns a Response. For routes whose parameters are all path strings plus `request`;
    errors raised go to the app's exception handlers as from any route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(**request.path_params, request=request)
            return response

        return handler
