"""One model name's place in the registry: its loaded model (if any), state and requests.

A slot exists from startup (configured models) or from the moment a model repository folder
is seen, whether or not its model is loaded, so protocols answer 503 for a known model that
is loading or unloaded and 404 only for an unknown name (KServe's behaviour).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.model import C, ServedModel, require_ready
from hf_runtime.observability.context import current_request
from hf_runtime.observability.metrics import count_load_failure
from hf_runtime.types import ModelMetadata, ModelState, ModelStatus, RepositoryEntry

logger = logging.getLogger("hf_runtime")


NOT_LOADED = "not loaded: load it through the model repository API"
UNLOADING = "unloading"


class ModelSlot:
    """A ServedModel that delegates to its model while one is loaded.

    Its `status` is the slot's own until a model is attached: LOADING (configured models, from
    startup), FAILED with the load's error, or UNAVAILABLE (a repository folder not loaded, or
    unloaded); then the model's (READY, or FAILED when its engine died), and UNAVAILABLE while
    it unloads. Metadata and capabilities of a slot that is not READY raise `require_ready`'s
    error, so the protocols answer 503 (saying why when the load failed).
    """

    def __init__(self, config: ModelConfig, *, wanted: bool = True, base: str = "") -> None:
        self.config = config
        # Meant to be loaded: readiness waits for it (configured models; repository folders
        # once a load is asked for, until an unload).
        self.wanted = wanted
        self.base = base  # a LoRA adapter's slot: the model whose engine serves it
        self._model: ServedModel | None = None
        self._status = ModelStatus(ModelState.LOADING if wanted else ModelState.UNAVAILABLE)
        if not wanted:
            self._status = ModelStatus(ModelState.UNAVAILABLE, NOT_LOADED)
        self.load_seconds: float | None = None
        self.unloading = False
        # Load and unload of this name take turns (per slot: other models load meanwhile).
        self.lock = asyncio.Lock()
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self.config.model_name

    @property
    def task(self) -> str:
        if self._model is not None:
            return self._model.task
        return self.config.task.value if self.config.task else ""

    def status(self) -> ModelStatus:
        if self._model is None:
            return self._status
        if self.unloading:
            return ModelStatus(ModelState.UNAVAILABLE, UNLOADING)
        return self._model.status()

    @property
    def ready(self) -> bool:
        return self.status().ready

    @property
    def backend(self) -> str:
        """The backend running the model ("" until loaded)."""
        return self._model.backend if self._model is not None else ""

    @property
    def model(self) -> ServedModel | None:
        """The loaded model, whether or not it serves right now."""
        return self._model

    def entry(self) -> RepositoryEntry:
        status = self.status()
        return RepositoryEntry(self.name, status.state, status.reason)

    @property
    def loaded(self) -> ServedModel:
        require_ready(self)
        assert self._model is not None  # READY only with a model attached
        return self._model

    def metadata(self) -> ModelMetadata:
        return self.loaded.metadata()

    def capability(self, kind: type[C]) -> C | None:
        return self.loaded.capability(kind)

    def stats(self) -> Mapping[str, int]:
        return self._model.stats() if self._model is not None else {}

    # ------------------------------------------------------------ requests in flight

    def hold(self) -> None:
        """Count the current request against this model until it ends (see `wait_idle`)."""
        context = current_request()
        if context is None:
            return
        self.in_flight += 1
        self._idle.clear()
        context.on_end.append(self._release)

    def _release(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for this model's requests in flight to end."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------ lifecycle

    def attach(self, model: ServedModel) -> None:
        """Serve an already loaded model (a LoRA adapter of another slot's engine)."""
        self._model = model

    async def load(self) -> tuple[ServedModel, ...]:
        """Load the model; returns the LoRA adapters to serve beside it under their own names."""
        from hf_runtime.runtime.loading import load_model

        self._status = ModelStatus(ModelState.LOADING)
        started = time.perf_counter()
        try:
            loaded = await load_model(self.config)
        except Exception as exc:  # keep serving the other models; this one is FAILED
            self.fail(load_failure_reason(exc), exc)
            raise
        self._model = loaded.model
        self.load_seconds = time.perf_counter() - started
        logger.info("model %s (%s) ready in %.1f s", self.name, self.task, self.load_seconds)
        return loaded.adapters

    def fail(self, reason: str, exc: BaseException | None = None) -> None:
        """FAILED with `reason`: logged once and counted."""
        self._status = ModelStatus(ModelState.FAILED, reason)
        expected = exc is None or _expected(exc)
        logger.error("model %s: %s", self.name, reason, exc_info=None if expected else exc)
        count_load_failure(self.name, reason)

    def forget_failure(self) -> None:
        """An unloaded model is UNAVAILABLE, whatever its last load did."""
        if self._model is None:
            self._status = ModelStatus(ModelState.UNAVAILABLE, NOT_LOADED)

    async def unload(self, timeout: float) -> None:
        """Refuse new requests (503), wait up to `timeout` s for those in flight, then close
        the model and drop it: the caller releases the memory."""
        if self._model is None:
            return
        self.unloading = True
        try:
            if not await self.wait_idle(timeout):
                logger.warning(
                    "model %s: unloading with %d request(s) still in flight after %.0f s; "
                    "they are cut off", self.name, self.in_flight, timeout,
                )  # fmt: skip
            model, self._model = self._model, None
            await model.aclose()
        finally:
            self.unloading = False
        self._status = ModelStatus(ModelState.UNAVAILABLE, NOT_LOADED)
        self.load_seconds = None

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()


def load_failure_reason(exc: BaseException) -> str:
    """The reason a FAILED slot reports: "Loading failed: <error type>: <message>"."""
    message = " ".join(str(exc).split())  # one line: it goes in logs and error bodies
    error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"Loading failed: {error}"


def _expected(exc: BaseException) -> bool:
    """Errors an operator fixes from the message alone (no traceback needed)."""
    return isinstance(exc, (ConfigError, OSError, ValueError))
