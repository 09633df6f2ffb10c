"""The runtime a BentoML service hosts: configuration, model registry and protocol apps.

`service.py` stays a thin BentoML shell around one `Runtime`; everything it needs to know
(which apps to mount where, whether it is ready, what to add to /metrics) comes from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from hf_runtime.backends.registry import validate_backend_sections, with_drain_timeout
from hf_runtime.config import RuntimeConfig, load_config
from hf_runtime.errors import ConfigError
from hf_runtime.observability.logs import configure_logging
from hf_runtime.observability.metrics import metrics_text
from hf_runtime.protocols.gateway import Gateway, GatewaySettings, InFlight
from hf_runtime.protocols.grpc.server import GrpcServer, start_grpc_server
from hf_runtime.runtime.drain import EXIT_GRACE, Drainer
from hf_runtime.runtime.liveness import EXIT_DELAY, EngineWatch
from hf_runtime.runtime.registry import Registry
from hf_runtime.runtime.startup import (
    EXIT_ENGINE_DIED,
    EXIT_LOAD_FAILURE,
    exit_process,
    grpc_port_message,
)
from hf_runtime.runtime.torch_threads import configure_torch_threads, torch_only_processes
from hf_runtime.types import ModelState

logger = logging.getLogger("hf_runtime")


# Metric families of the default prometheus_client registry that /metrics must show.
EXPORTED_PREFIXES = ("hf_runtime_", "vllm:")
GRPC_STOP_GRACE = 1.0  # seconds for RPCs still running at shutdown
CLOSE_TIMEOUT = 10.0  # seconds to close the models before exiting on a dead engine


@dataclass
class Runtime:
    config: RuntimeConfig
    registry: Registry
    apps: list[tuple[str, FastAPI]] = field(default_factory=list)
    in_flight: InFlight = field(default_factory=InFlight)
    grpc: GrpcServer | None = None
    _loading: asyncio.Task[None] | None = None
    _watching: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        server = self.config.server
        self.drainer = Drainer(
            lambda: self.in_flight.count,
            server.drain_timeout,
            cut_off=self._cut_off,
            exit_grace=EXIT_GRACE,
        )
        # Readiness (/readyz, V2 ready, gRPC ServerReady) turns false the moment a drain starts.
        self.registry.is_draining = lambda: self.drainer.draining
        self.gateway_settings = GatewaySettings(
            api_keys=tuple(server.read_api_keys()),
            protect_metrics=server.protect_metrics,
            max_request_bytes=server.max_request_bytes,
            is_draining=lambda: self.drainer.draining,
        )

    @property
    def middleware(self) -> tuple[type[Gateway], dict[str, Any]]:
        """The ASGI middleware (class, options) to put in front of every route."""
        return Gateway, {"settings": self.gateway_settings, "in_flight": self.in_flight}

    @classmethod
    def from_sources(cls, args: Mapping[str, Any] | None = None) -> Runtime:
        """Validate configuration now (fail fast at import), build apps; load nothing yet."""
        config = with_engine_drain(load_config(args=args))
        for model in config.models:  # backend sections too, before anything serves
            validate_backend_sections(model)
        registry = Registry.from_config(config)
        from hf_runtime.protocols.mounts import protocol_apps
        from hf_runtime.protocols.openai.responses_api.store import ResponseStore

        server = config.server
        store = ResponseStore(
            max_entries=server.response_store_max_count,
            max_bytes=server.response_store_max_bytes,
            max_age_s=server.response_store_max_age_s,
        )
        apps = protocol_apps(
            registry, max_request_bytes=server.max_request_bytes, response_store=store
        )
        return cls(config=config, registry=registry, apps=apps)

    @property
    def gpu_count(self) -> int:
        """GPUs to request: the largest tensor_parallel_size of any vLLM model, else 1."""
        sizes = [int((m.vllm or {}).get("tensor_parallel_size", 1)) for m in self.config.models]
        return max([1, *sizes])

    async def start_loading(self) -> None:
        """Start the gRPC server, and load every model in the background so health routes
        and RPCs answer (503 / UNAVAILABLE) meanwhile."""
        configure_logging(self.config.server.log_format)
        # Process-wide, and this process only serves: a worker's threads take the GIL in turns
        # of this length (the encoder benchmark's c=64 gained 6-12% at 1 ms over 5 ms).
        sys.setswitchinterval(self.config.server.gil_switch_interval_ms / 1000)
        loop = asyncio.get_running_loop()
        if not self.drainer.install(loop):
            logger.warning("not on the main thread: SIGTERM will not drain")
        addresses = listening_addresses()  # before gRPC listens too
        log_listening(bool(self.gateway_settings.api_keys), addresses)
        await self._start_grpc(addresses)
        self._loading = asyncio.get_running_loop().create_task(self._load())

    async def _start_grpc(self, http_addresses: list[str]) -> None:
        """Open Inference Protocol V2 over gRPC, sharing the gateway's keys, limits, drain and
        in-flight count. A port that cannot be bound stops the startup."""
        server = self.config.server
        if server.grpc_port == 0:
            logger.info("gRPC server off (grpc_port is 0)")
            return
        host = server.grpc_host or same_interface(http_addresses)
        try:
            self.grpc = await start_grpc_server(
                self.registry, self.gateway_settings, self.in_flight, server.grpc_port, host
            )
        except RuntimeError:  # grpc says only "Failed to bind": say why, and what to change
            raise ConfigError(grpc_port_message(host, server.grpc_port)) from None
        logger.info("Open Inference Protocol V2 over gRPC on %s:%d", host, self.grpc.port)

    async def _load(self) -> None:
        await self._load_models()
        # Whatever loaded (now or later, through the repository API) is watched: an engine
        # that dies ends the process.
        watch = EngineWatch(self.registry, self._engine_died)
        self._watching = asyncio.get_running_loop().create_task(watch.run())

    async def _engine_died(self, names: str) -> None:
        if self.drainer.draining:  # the drain ends the process anyway
            return
        logger.error(
            "the engine of model(s) %s died: /livez answers 503, requests 503; the process "
            "exits in %.0f s (code %d)", names, EXIT_DELAY, EXIT_ENGINE_DIED,
        )  # fmt: skip
        await asyncio.sleep(EXIT_DELAY)
        with contextlib.suppress(Exception):  # what still runs; a dead engine may not answer
            await asyncio.wait_for(self.registry.close(), CLOSE_TIMEOUT)
        exit_process(EXIT_ENGINE_DIED, f"exiting: the engine of model(s) {names} died")

    @property
    def live(self) -> bool:
        """False once a model's engine has died (BentoML's /livez, V2 live)."""
        return self.registry.live

    async def _load_models(self) -> None:
        try:
            # Imports torch: not on the loop.
            passive = torch_only_processes(self.config)
            await asyncio.to_thread(configure_torch_threads, passive)
            await self.registry.load_all()
        except Exception:  # logged and counted per model, which is FAILED with its reason
            slots = self.registry.slots()
            failed = [s.name for s in slots if s.status().state is ModelState.FAILED]
            if self.config.server.exit_on_load_failure:
                await self.registry.close()  # frees the engines (vLLM's processes) first
                exit_process(
                    EXIT_LOAD_FAILURE,
                    f"model(s) {', '.join(failed)} failed to load; exiting "
                    "(server.exit_on_load_failure)",
                )
            logger.error(
                "model(s) %s failed to load: /readyz stays 503 and their routes say why "
                "(set server.exit_on_load_failure to exit instead)", ", ".join(failed),
            )  # fmt: skip

    @property
    def ready(self) -> bool:
        return self.registry.ready

    async def _cut_off(self, reason: str) -> None:
        """End every request still in flight when the drain times out: HTTP ones the protocol's
        way (the gateway), RPCs by stopping the gRPC server without grace (UNAVAILABLE)."""
        self.in_flight.cut_off(reason)
        if self.grpc is not None:
            await self.grpc.stop(0)
            self.grpc = None

    async def close(self) -> None:
        for task in (self._loading, self._watching):
            if task is not None and not task.done():
                task.cancel()
        if self.grpc is not None:  # the drain already waited for RPCs in flight
            await self.grpc.stop(GRPC_STOP_GRACE)
            self.grpc = None
        await self.registry.close()

    def metrics_text(self) -> str:
        """Prometheus text to append to BentoML's /metrics (see observability.metrics)."""
        return metrics_text(self._model_stats, EXPORTED_PREFIXES)

    def _model_stats(self) -> list[tuple[str, str, dict[str, int]]]:
        return [(s.name, s.backend, dict(s.stats())) for s in self.registry.slots() if s.stats()]


def with_engine_drain(config: RuntimeConfig) -> RuntimeConfig:
    """Give every backend engine that handles SIGTERM itself (vLLM's engine core, which
    BentoML's supervisor signals too) the server's drain time, unless configured otherwise:
    each backend says how (`hf_runtime.backends.registry.Backend.with_drain_timeout`)."""
    seconds = math.ceil(config.server.drain_timeout)
    models = [with_drain_timeout(model, seconds) for model in config.models]
    return config.model_copy(update={"models": models})


def listening_addresses() -> list[str]:
    """The "ip:port" addresses this process listens on (BentoML binds the HTTP socket)."""
    try:
        import psutil

        return sorted(
            {
                f"{c.laddr.ip}:{c.laddr.port}"
                for c in psutil.Process().net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            }
        )
    except Exception:  # informational, and the gRPC default below has a fallback
        return []


def same_interface(addresses: list[str]) -> str:
    """The interface the HTTP server listens on, for gRPC: every one when HTTP listens on every
    one (or when it cannot be told, what a pod needs), else HTTP's own address."""
    hosts = [address.rsplit(":", 1)[0] for address in addresses]
    if "::" in hosts:
        return "::"
    if not hosts or "0.0.0.0" in hosts:
        return "0.0.0.0"
    return hosts[0]


def log_listening(key_required: bool, addresses: list[str]) -> None:
    """Say what this worker really listens on (BentoML's banner always says localhost)."""
    everywhere = any(a.startswith(("0.0.0.0:", ":::")) for a in addresses)
    logger.info(
        "listening on %s%s; API key %s",
        ", ".join(addresses) or "(unknown)",
        " (every network interface)" if everywhere else "",
        "required" if key_required else "NOT required (set HF_RUNTIME_API_KEY to require one)",
    )
