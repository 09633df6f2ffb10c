"""The encoder hot path's route classes and how the gateway calls them.

`LeanRoute` is the route class for handlers that read their own body (V1 predict, V2 infer):
documented by FastAPI like any route, called as a plain Starlette handler. `LeanEndpoint`
calls a lean route (a `LeanRoute`, or a `json_body.LeanJSONRoute`) straight from the gateway
(hf_runtime.protocols.direct_routes): what its FastAPI app runs around a route for one request
is kept, the app's per-request layers in between are not (see `LeanEndpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

# The exit stack FastAPI's own request handler expects (it closes uploaded files with it):
# set by its AsyncExitStackMiddleware, here by LeanEndpoint.
FILE_STACK_KEY = "fastapi_middleware_astack"


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


def is_lean(route: object) -> bool:
    """Whether `route` is an encoder hot-path route (LeanRoute or LeanJSONRoute)."""
    from hf_runtime.protocols.json_body import LeanJSONRoute

    return isinstance(route, (LeanRoute, LeanJSONRoute))


class LeanEndpoint:
    """One lean route of `app`, called the way `app` would call it, minus its router.

    For one request FastAPI runs, outermost first: Starlette's `ServerErrorMiddleware` (the
    app's handler for `Exception`/500), the app's own middlewares, `ExceptionMiddleware` (the
    app's other exception handlers, put in the scope for the route), FastAPI's
    `AsyncExitStackMiddleware` (an exit stack in the scope), the router (matching the path
    against every route, then the method) and the route's ASGI app. Here the gateway has
    matched the route already (`scope_keys`: what the mount, the app and the route put in the
    scope), so only the middlewares run, the same classes with the same handlers. Only for
    apps without middlewares of their own (`for_route` says None otherwise)."""

    def __init__(self, app: FastAPI, route: APIRoute, scope_keys: dict[str, Any]) -> None:
        error_handler = None
        handlers: dict[Any, Any] = {}
        for key, value in app.exception_handlers.items():  # as FastAPI builds its stack
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        inner: ASGIApp = ExceptionMiddleware(route.app, handlers=handlers, debug=app.debug)
        self._app = ServerErrorMiddleware(inner, handler=error_handler, debug=app.debug)
        self.scope_keys = {**scope_keys, "app": app, "router": app.router}

    @classmethod
    def for_route(
        cls, app: ASGIApp, route: object, scope_keys: dict[str, Any]
    ) -> LeanEndpoint | None:
        """The LeanEndpoint of `route` (matched in `app` with `scope_keys`), or None when the
        request must go through the app: not a lean route, or an app with middlewares."""
        if not (isinstance(app, FastAPI) and isinstance(route, APIRoute) and is_lean(route)):
            return None
        if app.user_middleware:
            return None
        return cls(app, route, scope_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # path_params is shared by every request to this path: each gets its own copy.
        scope["path_params"] = dict(scope["path_params"])
        async with AsyncExitStack() as files:
            scope[FILE_STACK_KEY] = files
            await self._app(scope, receive, send)
