"""vLLM's own OpenAI server on the converted SmolLM2 folder, configured as hf-runtime's vllm
backend configures the engine (hf_runtime.backends.vllm.env / async_llm)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.core.workload import CHAT_MODEL_NAME
from benchmarks.peers.servers import HOST


def vllm_server_command(model_dir: Path, max_num_seqs: int) -> Callable[[int], list[str]]:
    """`python -m vllm.entrypoints.openai.api_server` as hf-runtime's vllm backend configures
    the engine: fp32 (the checkpoint's dtype), eager, the same max_num_seqs."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model_dir), "--served-model-name", CHAT_MODEL_NAME,
            "--host", HOST, "--port", str(port), "--dtype", "float32", "--enforce-eager",
            "--max-num-seqs", str(max_num_seqs), "--disable-uvicorn-access-log",
        ]  # fmt: skip

    return command


def vllm_server_env() -> dict[str, str]:
    """The environment defaults hf-runtime's vllm backend sets (env.apply_env_defaults)."""
    from hf_runtime.backends.vllm.config import VLLMEngineConfig
    from hf_runtime.backends.vllm.env import apply_env_defaults

    env: dict[str, str] = {}
    apply_env_defaults(VLLMEngineConfig(), env)
    return env
