"""What every loaded served model shares: its identity and the capabilities it offers."""

from __future__ import annotations

from typing import Any

from hf_runtime.config import ModelConfig
from hf_runtime.model import (
    C,
    Classifier,
    Embedder,
    Pooler,
    Predictor,
    Scorer,
    SparseEmbedder,
    TextGenerator,
    TextTokenizer,
)
from hf_runtime.tasks.registry import Capability, Task
from hf_runtime.types import ModelFacts, ModelState, ModelStatus

# The interface (hf_runtime.model) behind each capability a task declares.
CAPABILITY_INTERFACES: dict[Capability, type] = {
    Capability.predictor: Predictor,
    Capability.embedder: Embedder,
    Capability.sparse_embedder: SparseEmbedder,
    Capability.scorer: Scorer,
    Capability.text_tokenizer: TextTokenizer,
    Capability.text_generator: TextGenerator,
    Capability.pooler: Pooler,
    Capability.classifier: Classifier,
}


class ServedModelBase:
    """Name, task, backend name and capabilities: those its task declares (tasks.registry),
    decided once, when the model is built; the subclass implements each one's interface.
    A subclass says whether it is `ready`; `status` says why not."""

    def __init__(self, config: ModelConfig, task: Task, platform: str) -> None:
        self.config = config
        self._task = task
        self._platform = platform
        self._capabilities: dict[type, object] = {
            CAPABILITY_INTERFACES[capability]: self for capability in task.spec.capabilities
        }

    @property
    def name(self) -> str:
        return self.config.model_name

    @property
    def task(self) -> str:
        return self._task.value

    @property
    def backend(self) -> str:
        return self._platform

    def facts(self, **found: Any) -> ModelFacts:
        """Its source and limits, from its configuration (plus what the subclass `found`)."""
        config = self.config
        return ModelFacts(
            source=config.model_id or config.model_dir or config.model_name,
            revision=config.model_revision,
            dtype=str(config.dtype),
            max_batch_tokens=config.batching.max_batch_tokens,
            max_queue_size=config.batching.max_queue_size,
            auto_truncate=config.auto_truncate,
            **found,
        )

    def capability(self, kind: type[C]) -> C | None:
        return self._capabilities.get(kind)  # type: ignore[return-value]

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    def engine_failure(self) -> str | None:
        """Why the model's engine died (its `failure`), None while it lives or once closed."""
        return None

    def status(self) -> ModelStatus:
        """READY; FAILED when its engine died (with how); UNAVAILABLE once closed."""
        if self.ready:
            return ModelStatus(ModelState.READY)
        failure = self.engine_failure()
        if failure:
            return ModelStatus(ModelState.FAILED, failure)
        return ModelStatus(ModelState.UNAVAILABLE, "the model has been shut down")
