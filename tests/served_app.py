"""The service's HTTP surface in-process: every protocol app mounted as BentoML mounts them
(PassiveMount: a mount matches only the paths its app routes), behind the same Gateway.

Tests use it to exercise the gateway (limits, keys, drain, JSON 404s) and to fuzz every
protocol at once without starting `bentoml serve`. `direct` (on by default, as in the service:
hf_runtime.fast_path) lets the gateway hand protocol requests straight to their app.
"""

from __future__ import annotations

from _bentoml_impl.server.mount import PassiveMount
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.gateway import Gateway, GatewaySettings, InFlight
from hf_runtime.protocols.mounts import protocol_apps


def make_served_app(
    registry: ModelRegistry,
    settings: GatewaySettings | None = None,
    in_flight: InFlight | None = None,
    *,
    direct: bool = True,
) -> Gateway:
    async def livez(_: object) -> PlainTextResponse:
        return PlainTextResponse("\n")

    settings = settings or GatewaySettings()
    apps = protocol_apps(registry, max_request_bytes=settings.max_request_bytes)
    routes = [Route("/livez", livez), Route("/readyz", livez)]
    routes += [PassiveMount(path if path != "/" else "", app) for path, app in apps]
    mounts = apps if direct else []
    return Gateway(Starlette(routes=routes), settings, in_flight or InFlight(), direct=mounts)
