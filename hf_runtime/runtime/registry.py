"""Models by name, with their loading state. Protocols see this through `ModelRegistry`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from hf_runtime.config import ModelConfig, RuntimeConfig
from hf_runtime.errors import ConfigError, ModelNotFound
from hf_runtime.model import C, ServedModel, require_ready
from hf_runtime.observability.context import note_model
from hf_runtime.observability.metrics import count_load_failure
from hf_runtime.types import ModelMetadata, ModelState, ModelStatus

logger = logging.getLogger("hf_runtime")


class ModelSlot:
    """A ServedModel that exists from startup and delegates once its model has loaded.

    Its `status` is the slot's own until a model is attached: LOADING (configured models, from
    startup), FAILED with the load's error, or UNAVAILABLE (nothing loaded); then the model's
    (READY, or FAILED when its engine died). Metadata and capabilities of a slot that is not
    READY raise `require_ready`'s error, so the protocols answer 503 while loading instead of
    not listening at all (KServe's behaviour), and say why when the load failed.
    """

    def __init__(self, config: ModelConfig, state: ModelState = ModelState.LOADING) -> None:
        self.config = config
        self._model: ServedModel | None = None
        self._status = ModelStatus(state)
        self.load_seconds: float | None = None

    @property
    def name(self) -> str:
        return self.config.model_name

    @property
    def task(self) -> str:
        if self._model is not None:
            return self._model.task
        return self.config.task.value if self.config.task else ""

    def status(self) -> ModelStatus:
        return self._model.status() if self._model is not None else self._status

    @property
    def ready(self) -> bool:
        return self.status().ready

    @property
    def backend(self) -> str:
        """The backend running the model ("" until loaded)."""
        return self._model.backend if self._model is not None else ""

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

    def attach(self, model: ServedModel) -> None:
        """Serve an already loaded model (a LoRA adapter of another slot's engine)."""
        self._model = model

    async def load(self) -> tuple[ServedModel, ...]:
        """Load the model; returns the LoRA adapters to serve beside it under their own names.
        A failure leaves the slot FAILED with the error as its reason, logged and counted."""
        from hf_runtime.runtime.loading import load_model

        self._status = ModelStatus(ModelState.LOADING)
        started = time.perf_counter()
        try:
            loaded = await load_model(self.config)
        except Exception as exc:  # keep serving the other models; this one is FAILED
            self._status = ModelStatus(ModelState.FAILED, load_failure_reason(exc))
            logger.error(
                "model %s: %s", self.name, self._status.reason, exc_info=not _expected(exc)
            )
            count_load_failure(self.name, self._status.reason)
            raise
        self._model = loaded.model
        self.load_seconds = time.perf_counter() - started
        logger.info("model %s (%s) ready in %.1f s", self.name, self.task, self.load_seconds)
        return loaded.adapters

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


class Registry:
    """Name -> ModelSlot. Implements hf_runtime.model.ModelRegistry."""

    def __init__(self, slots: Sequence[ModelSlot]) -> None:
        self._slots = {slot.name: slot for slot in slots}
        # The server's drain state (SIGTERM): not ready, so load balancers stop sending.
        self.is_draining: Callable[[], bool] = lambda: False

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> Registry:
        return cls([ModelSlot(m) for m in config.models])

    def get(self, name: str) -> ModelSlot:
        try:
            slot = self._slots[name]
        except KeyError:
            raise ModelNotFound(name) from None
        note_model(slot.name, slot.backend)  # labels this request's metrics and logs
        return slot

    def names(self) -> list[str]:
        return list(self._slots)

    def slots(self) -> list[ModelSlot]:
        return list(self._slots.values())

    @property
    def ready(self) -> bool:
        return not self.is_draining() and all(slot.ready for slot in self._slots.values())

    async def load_all(self) -> None:
        """Load every model, one after another; a failure does not stop the others.

        Sequential on purpose: transformers' lazy module imports are not thread-safe (two
        first-time loads in parallel threads can see half-initialised modules), and loading
        one model at a time keeps peak memory at the largest model, not the sum.
        """
        first_error: BaseException | None = None
        for slot in list(self._slots.values()):
            try:
                self._add_adapters(slot, await slot.load())
            except Exception as exc:  # logged by the slot; keep loading the rest
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def _add_adapters(self, slot: ModelSlot, adapters: Sequence[ServedModel]) -> None:
        """Serve each LoRA adapter of a loaded model under its own name (KServe #4338)."""
        for adapter in adapters:
            if adapter.name in self._slots:
                raise ConfigError(
                    f"model {slot.name}: adapter name {adapter.name} clashes with a served model"
                )
            adapter_slot = ModelSlot(slot.config.model_copy(update={"model_name": adapter.name}))
            adapter_slot.attach(adapter)
            self._slots[adapter.name] = adapter_slot

    async def close(self) -> None:
        for slot in self._slots.values():
            await slot.aclose()
