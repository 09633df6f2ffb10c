"""torch's CPU threads in the serving process: how many, and how they wait between parallel regions.

torch runs its intra-op work on an OpenMP pool (libgomp in the CPU wheels), whose threads spin
for a while after every parallel region, waiting for the next one. That suits torch's own
forward pass (one region per operator, back to back: with passive waiting the huggingface
backend's encoder served 0.84x on a quiet machine), but not a process where torch only
pre- and post-processes: on the onnxruntime backend (ONNX Runtime runs the forward on its own
threads) and the vllm backend (vLLM's engine runs in its own process), the threads spun after
each batch's pooling and held a core the event loop, the tokenizer and ONNX Runtime needed
(about 10% of a core at 64 connections). When every configured model runs its forward outside
torch here, the process therefore loads torch with OMP_WAIT_POLICY=PASSIVE (threads sleep at
once), unless the environment chooses a wait policy itself (OMP_WAIT_POLICY or GOMP_SPINCOUNT).
The setting is read once, when torch loads libgomp, and removed from the environment again, so
engine processes started later (vLLM's, which pins its own threads) see the user's environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from hf_runtime.config import RuntimeConfig

# Environment variables through which the user picks how OpenMP threads wait.
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# Backends whose forward passes run outside this process's torch.
FORWARD_OUTSIDE_TORCH = frozenset({"onnxruntime", "vllm"})


def torch_only_processes(config: RuntimeConfig) -> bool:
    """Whether torch in this process only pre- and post-processes: every model is configured on
    a backend that runs its forward elsewhere (a model repository may load any backend later)."""
    return (
        bool(config.models)
        and not config.server.model_repository
        and all(model.backend in FORWARD_OUTSIDE_TORCH for model in config.models)
    )


@contextmanager
def passive_omp_wait(environ: MutableMapping[str, str] = os.environ) -> Iterator[None]:
    """OMP_WAIT_POLICY=PASSIVE in `environ` for the body (where torch is imported), unless the
    user chose a wait policy or torch (hence libgomp) is already loaded: then nothing changes."""
    if "torch" in sys.modules or any(name in environ for name in OMP_WAIT_VARIABLES):
        yield
        return
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        environ.pop("OMP_WAIT_POLICY", None)


def configure_torch_threads(passive: bool = False) -> None:
    """Load torch (with sleeping OpenMP threads when `passive`, see the module) and use every
    core the process may run on for intra-op work.

    torch's default count reads the machine's core count, which overcommits in containers
    limited by cgroups/affinity; the inference thread is the only torch caller, so inter-op
    threads idle. HF_RUNTIME_TORCH_THREADS is not read: set OMP_NUM_THREADS to override.
    """
    try:
        if passive:
            with passive_omp_wait():
                import torch
        else:
            import torch
    except ImportError:
        return
    if os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, cores or 1))
