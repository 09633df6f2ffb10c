"""Engine death is liveness: a model whose engine died never serves again, so the process must
not look alive.

An engine dies when vLLM's engine core process exits (killed, as the OOM killer would) or the
huggingface backend's inference thread dies. Its requests already get 503 saying so (the engine
raises ModelLoadFailed, and the model's state is FAILED with that reason); here the runtime
notices within WATCH_SECONDS, logs which engine died and how (once), turns /livez 503 and ends
the process with EXIT_ENGINE_DIED after EXIT_DELAY seconds (as vLLM's own server exits), so an
orchestrator restarts it and `bentoml serve` does not linger half-dead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hf_runtime.runtime.registry import Registry

logger = logging.getLogger("hf_runtime")

WATCH_SECONDS = 1.0
EXIT_DELAY = 5.0  # seconds for probes and clients to see the 503s before the process ends


class EngineWatch:
    """Polls the registry's loaded models; on the first dead engine calls `on_death`."""

    def __init__(
        self,
        registry: Registry,
        on_death: Callable[[str], Awaitable[None]],
        *,
        interval: float = WATCH_SECONDS,
    ) -> None:
        self._registry = registry
        self._on_death = on_death
        self._interval = interval
        self.live = True

    async def run(self) -> None:
        while self.live:
            await asyncio.sleep(self._interval)
            dead = self._registry.dead_engines()
            if dead:
                self.live = False
                for name, reason in dead.items():
                    logger.error("model %s: %s", name, reason)
                await self._on_death(", ".join(dead))
