"""The one narrow interface protocol modules depend on.

Protocol routers (`hf_runtime.protocols.*`) import this module, `types` and `errors` only:
never a backend, torch, transformers or vllm. Implementations live in `hf_runtime.runtime`.

Every method that can take more than a few microseconds is async and does its work off the
event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, runtime_checkable

from hf_runtime.types import (
    EmbeddingResult,
    GenerationDelta,
    GenerationRequest,
    ModelMetadata,
    Prediction,
)


@runtime_checkable
class ServedModel(Protocol):
    """A model as every protocol sees it."""

    @property
    def name(self) -> str: ...

    @property
    def task(self) -> str:
        """A `hf_runtime.tasks.names.Task` value."""

    @property
    def ready(self) -> bool: ...

    def metadata(self) -> ModelMetadata: ...

    async def predict(self, instances: Sequence[str]) -> Prediction:
        """KServe V1/V2 inference on encoder tasks.

        Raises InvalidInput for bad instances, Unsupported for generative models,
        ModelNotReady while loading, Overloaded when the queue is full.
        """

    async def embed(
        self, inputs: Sequence[str] | Sequence[Sequence[int]], dimensions: int | None = None
    ) -> EmbeddingResult:
        """Embeddings (text_embedding task only; Unsupported otherwise). Token-id inputs allowed.

        `dimensions` truncates each vector to its first N values and renormalises (Matryoshka).
        """

    @property
    def generator(self) -> TextGenerator | None:
        """The generation interface, or None for encoder models."""


class TextGenerator(Protocol):
    """Generation as the OpenAI layer sees it; implemented by the huggingface and vllm engines.

    The engine owns scheduling (continuous batching). Each `generate` call is ONE sequence;
    the protocol layer fans out `n > 1` into n calls (with derived seeds).
    """

    @property
    def max_model_len(self) -> int: ...

    @property
    def is_encoder_decoder(self) -> bool: ...

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    async def detokenize(self, token_ids: Sequence[int]) -> str: ...

    async def render_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> list[int]:
        """Apply the chat template (request's, if allowed; config file's; tokenizer's) -> ids.

        Raises InvalidInput (param "messages" / "chat_template") when no template exists or the
        template fails on these messages.
        """

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        """Stream deltas for one sequence. Closing the iterator (or cancelling the task that
        iterates it) aborts the sequence within one decoding step."""


class ModelRegistry(Protocol):
    """Name -> ServedModel lookup shared by all protocols."""

    def get(self, name: str) -> ServedModel:
        """Raises ModelNotFound."""

    def names(self) -> list[str]: ...

    @property
    def ready(self) -> bool:
        """True once every model has loaded."""
