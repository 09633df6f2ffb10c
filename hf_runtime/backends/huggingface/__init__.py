"""The Hugging Face transformers backend: every task, on transformers + torch.

Importing this package imports nothing heavy; its modules import torch and transformers and
are loaded only when a model of this backend loads (`BACKEND.load`). Modules:
  encoder_backend    the `EncoderBackend`: AutoModelFor<task> behind the shared tokenizer side
                     (`hf_runtime.backends.transformers_encoder`), batched forward
  generation_engine  the `GenerationEngine`: continuous batching in one engine thread
  running_batch      the engine thread's running sequences, prefilled and stepped together
  decode_batch       several sequences decoded together in one forward pass (batch kinds)
  padded_batch       the padded batch: every running sequence in one left-padded cache
  prefill            prompts through the model before they join: alone, or together padded
  kv_cache           the padded batch's growable cache; grouped-query attention on CPU
  delivery           hands the engine thread's deltas to the event loops, one wake-up a step
  precision          opt-in encoder precisions: bf16 hardware checks, dynamic int8
  loader             loads the model for a task and returns the parts the runtime serves
"""

from __future__ import annotations

from hf_runtime.backends import BackendParts
from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task


class HuggingFaceBackend:
    """The huggingface backend as the registry sees it (`hf_runtime.backends.registry`)."""

    name = "huggingface"
    label = "huggingface"
    install_hint = "torch and transformers are missing: reinstall hf-runtime"

    def installed(self) -> bool:
        return True  # torch and transformers are hf-runtime's own dependencies

    def supported_architectures(self) -> frozenset[str] | None:
        return None  # whatever transformers loads (trust_remote_code included)

    def unsupported_reason(self, task: Task) -> str | None:
        return None

    def auto_declines(self, task: Task) -> str | None:
        return None  # the default backend: auto keeps it when no other backend takes a model

    def validate_config(self, config: ModelConfig) -> None:
        """No section of its own: every setting it reads is a model-level one."""

    def with_drain_timeout(self, config: ModelConfig, seconds: int) -> ModelConfig:
        return config  # its engine is a thread of the worker: it stops with the worker

    async def load(self, config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
        from hf_runtime.backends.huggingface.loader import load_huggingface

        return await load_huggingface(config, source, task)


BACKEND = HuggingFaceBackend()
