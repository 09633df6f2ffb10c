"""An in-process gRPC server (grpc.aio, on its own event loop in a thread) for protocol tests."""

from __future__ import annotations

import asyncio
import threading

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.gateway import GatewaySettings, InFlight
from hf_runtime.protocols.grpc.server import GrpcServer, start_grpc_server


class GrpcLiveServer:
    """`start_grpc_server` on a free 127.0.0.1 port; `url` is host:port (what tritonclient
    takes). Sync tests call it from their own thread, as a real client would."""

    def __init__(
        self,
        registry: ModelRegistry,
        settings: GatewaySettings | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings or GatewaySettings()
        self.in_flight = in_flight or InFlight()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: GrpcServer | None = None
        self.url = ""

    def run(self, coroutine: object) -> object:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def __enter__(self) -> GrpcLiveServer:
        self._thread.start()
        start = start_grpc_server(self.registry, self.settings, self.in_flight, 0, "127.0.0.1")
        server = self.run(start)
        assert isinstance(server, GrpcServer)
        self._server = server
        self.url = f"127.0.0.1:{server.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self.run(self._server.stop(None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
