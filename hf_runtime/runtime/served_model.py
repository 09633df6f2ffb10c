"""What every loaded served model shares: its identity and the capabilities it offers."""

from __future__ import annotations

from hf_runtime.config import ModelConfig
from hf_runtime.model import C
from hf_runtime.tasks.names import Task
from hf_runtime.types import ModelState, ModelStatus


class ServedModelBase:
    """Name, task, backend name and capabilities (decided once, when the model is built).
    A subclass says whether it is `ready`; `status` says why not."""

    def __init__(
        self, config: ModelConfig, task: Task, platform: str, capabilities: dict[type, object]
    ) -> None:
        self.config = config
        self._task = task
        self._platform = platform
        self._capabilities = capabilities

    @property
    def name(self) -> str:
        return self.config.model_name

    @property
    def task(self) -> str:
        return self._task.value

    @property
    def backend(self) -> str:
        return self._platform

    def capability(self, kind: type[C]) -> C | None:
        return self._capabilities.get(kind)  # type: ignore[return-value]

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def status(self) -> ModelStatus:
        """READY, or UNAVAILABLE once closed."""
        if self.ready:
            return ModelStatus(ModelState.READY)
        return ModelStatus(ModelState.UNAVAILABLE, "the model has been shut down")
