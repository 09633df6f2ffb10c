"""BentoML shell for hf-runtime: lifecycle, resources and protocol mounts. Nothing else.

Configuration is validated when this module is imported, so `bentoml serve` fails at once on
a bad key. Models load in the background after startup: /livez answers immediately, /readyz
and the V2 ready routes say 503 until every model has loaded. One worker: metrics, drain and
model state live in it.
"""

from __future__ import annotations

import logging
import sys

import bentoml

from hf_runtime import bentoml_timeout, endpoint_labels, fast_path, http_limits
from hf_runtime.baked import split_hub_weights, with_baked_models
from hf_runtime.errors import ConfigError
from hf_runtime.runtime import startup
from hf_runtime.runtime.server import Runtime

# A worker that exits ends the server: never restarted into the same failure (see startup).
startup.never_respawn()
# `--arg hub_weights=bake` at `bentoml build` bakes the Hub weights into the Bento (see
# hf_runtime.baked); every other argument is configuration.
_config_args, _hub_weights = split_hub_weights(vars(bentoml.use_arguments()))
runtime = startup.exit_on_startup_error(lambda: Runtime.from_sources(_config_args))
startup.check_ports(runtime.config, sys.argv)  # in `bentoml serve` itself, before the worker
# BentoML's per-request work kept off the protocol routes where that loses nothing configured.
_fast_path = fast_path.decide(runtime.config.server)
if _fast_path.direct_dispatch:  # BentoML's request timeout without a task per request
    bentoml_timeout.install()
# BentoML's traffic metrics labelled by route template, never by a client's raw path.
endpoint_labels.install()
# uvicorn without a header timeout, a URL limit or JSON framing errors: see http_limits.
http_limits.install()


def _mount_all(cls: type) -> type:
    # The first mount applied is matched first: see Runtime.from_sources for the order.
    for path, app in runtime.apps:
        cls = bentoml.asgi_app(app, path=path)(cls)
    return cls


def _guarded(service: bentoml.Service) -> bentoml.Service:
    # Limits, API keys, drain, request ids and JSON 404s in front of every route; with the
    # fast path, protocol requests go from it straight to their app.
    middleware, options = runtime.middleware
    direct = runtime.apps if _fast_path.direct_dispatch else []
    service.add_asgi_middleware(middleware, **options, direct=direct)
    return service


@_guarded
@bentoml.service(
    name="hf-runtime",
    # A GPU annotation for BentoCloud/Kubernetes; on a CPU-only machine it still serves.
    resources={"gpu": runtime.gpu_count, "gpu_type": "nvidia-l4"},
    traffic={"timeout": 600},
    workers=1,
    **_fast_path.service_config(),
)
@with_baked_models(runtime.config, _hub_weights)
@_mount_all
class HFRuntime:
    @bentoml.on_startup
    async def start_loading(self) -> None:
        try:
            await runtime.start_loading()
        except ConfigError as exc:  # a port taken since the supervisor checked it
            startup.fatal(str(exc))
        logging.getLogger("hf_runtime").info(_fast_path.describe())

    def __is_ready__(self) -> bool:
        return runtime.ready

    def __is_alive__(self) -> bool:
        return runtime.live  # False once a model's engine died (the process then exits)

    @bentoml.on_shutdown
    async def shutdown(self) -> None:
        await runtime.close()

    async def __metrics__(self, content: str) -> str:
        return content + runtime.metrics_text()
