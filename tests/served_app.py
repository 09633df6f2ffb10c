"""The service's HTTP surface in-process: every protocol app mounted as BentoML mounts them
(PassiveMount: a mount matches only the paths its app routes), behind the same Gateway.

Tests use it to exercise the gateway (limits, keys, drain, JSON 404s) and to fuzz every
protocol at once without starting `bentoml serve`.
"""

from __future__ import annotations

from _bentoml_impl.server.mount import PassiveMount
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols import kserve_v1, kserve_v2
from hf_runtime.protocols.gateway import Gateway, GatewaySettings, InFlight
from hf_runtime.protocols.openai.app import make_app as make_openai_app


def protocol_apps(registry: ModelRegistry) -> list[tuple[str, Starlette]]:
    """(mount path, app) in the order Runtime.from_sources mounts them."""
    openai_app = make_openai_app(registry)
    return [
        ("/v1", kserve_v1.make_app(registry)),
        ("/", kserve_v2.make_app(registry, prefix="/v2")),
        ("/v1", openai_app),
        ("/openai/v1", openai_app),
    ]


def make_served_app(
    registry: ModelRegistry,
    settings: GatewaySettings | None = None,
    in_flight: InFlight | None = None,
) -> Gateway:
    async def livez(_: object) -> PlainTextResponse:
        return PlainTextResponse("\n")

    routes = [Route("/livez", livez), Route("/readyz", livez)]
    routes += [
        PassiveMount(path if path != "/" else "", app) for path, app in protocol_apps(registry)
    ]
    return Gateway(Starlette(routes=routes), settings or GatewaySettings(), in_flight or InFlight())
