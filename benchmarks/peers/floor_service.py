"""The trivial route (peers/floor.py) mounted in `bentoml serve`, like hf-runtime's apps.

BENCH_FLOOR_MODE: `bentoml` (the mount alone), `gateway` (hf-runtime's gateway in front, as
service.py adds it, fast path off) or `fast-path` (the gateway with hf-runtime's BentoML fast
path, decided by hf_runtime.fast_path exactly as service.py decides it).
Run: BENCH_FLOOR_MODE=fast-path bentoml serve benchmarks.peers.floor_service:TrivialService
"""

from __future__ import annotations

import os

import bentoml

from benchmarks.peers.floor import make_trivial_app
from hf_runtime import bentoml_timeout, fast_path
from hf_runtime.config import ServerConfig
from hf_runtime.protocols.gateway import Gateway, GatewaySettings, InFlight

MODES = ("bentoml", "gateway", "fast-path")
MODE = os.environ.get("BENCH_FLOOR_MODE", "bentoml")
if MODE not in MODES:
    raise ValueError(f"BENCH_FLOOR_MODE must be one of {MODES}, not {MODE!r}")

trivial = make_trivial_app()
decision = fast_path.decide(ServerConfig(bentoml_fast_path=MODE == "fast-path"))
if decision.direct_dispatch:  # as service.py
    bentoml_timeout.install()


@bentoml.service(
    name="trivial-floor", workers=1, traffic={"timeout": 600}, **decision.service_config()
)
@bentoml.asgi_app(trivial, path="/")
class TrivialService:
    pass


if MODE != "bentoml":
    TrivialService.add_asgi_middleware(
        Gateway, settings=GatewaySettings(), in_flight=InFlight(),
        direct=[("/", trivial)] if decision.direct_dispatch else [],
    )  # fmt: skip
