"""An ONNX Runtime session for an encoder: its options, its execution providers, int8.

The options are the measured ones (README, "The onnxruntime backend"): every graph
optimisation (fused attention, LayerNorm and GELU), intra-op threads by the rule torch follows
here (the cores this process may run on, or OMP_NUM_THREADS), one inter-op thread, sequential
execution (one inference thread calls the session; parallel branches would only compete for
the same cores), and intra-op threads that sleep between forward passes rather than spin (a
spinning thread takes its core from the event loop and the tokenizer). IO binding with pre-allocated
outputs was measured and not used: no faster (0.98x) on CPU, where outputs are small.
ONNX Runtime's SkipLayerNormFusion is disabled: its CPU SkipLayerNormalization kernel measured
slower than the Add and LayerNormalization it replaces (see `fusion`). The
CUDA execution provider comes first when the installed onnxruntime has it (onnxruntime-gpu);
it is not tested here (no GPU in CI).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import onnxruntime

from hf_runtime.backends.onnxruntime.config import OnnxRuntimeConfig
from hf_runtime.backends.onnxruntime.export import OnnxFile, cached_build
from hf_runtime.sources import cache_dir

logger = logging.getLogger("hf_runtime")

_LEVELS = {
    "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
INT8_FILE = "model.int8.onnx"
# Online fusions left out (measured slower on CPU; see the module docstring).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# Above this an ONNX file keeps its weights in external data (protobuf's 2 GiB limit).
EXTERNAL_DATA_BYTES = 1_800_000_000


def intra_op_threads(configured: int | None = None) -> int:
    """The configured count, else OMP_NUM_THREADS, else the cores this process may use: the
    rule torch's threads follow in this runtime (one inference thread uses them all)."""
    if configured is not None:
        return configured
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def providers() -> list[str]:
    """CUDA first when this onnxruntime build has it (untested here), then the CPU."""
    available = onnxruntime.get_available_providers()
    return [CUDA_PROVIDER, CPU_PROVIDER] if CUDA_PROVIDER in available else [CPU_PROVIDER]


def session_options(section: OnnxRuntimeConfig) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = _LEVELS[section.graph_optimization_level]
    options.intra_op_num_threads = intra_op_threads(section.intra_op_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    spinning = "1" if section.allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return options


def open_session(path: Path, section: OnnxRuntimeConfig) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(
        str(path),
        session_options(section),
        providers=providers(),
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )


def quantized_int8(model: OnnxFile, name: str) -> OnnxFile:
    """The model with its transformer layers' MatMuls in dynamic int8, made once and cached
    beside the exports (keyed by the float file's content and onnxruntime's version)."""
    import hashlib

    digest = hashlib.sha256()
    with model.path.open("rb") as stream:
        while chunk := stream.read(1 << 23):
            digest.update(chunk)
    key = {
        "float model": f"sha256 {digest.hexdigest()}",
        "quantization": "dynamic int8: MatMul with constant weights in transformer layers, "
        "per-channel int8 weights, uint8 activations",
        "onnxruntime": onnxruntime.__version__,
    }
    folder = cache_dir() / "onnx" / f"{name}-int8-{digest.hexdigest()[:16]}"

    def build(target: Path) -> None:
        quantize_int8(model.path, target)

    return OnnxFile(cached_build(folder, INT8_FILE, key, build), f"{model.origin}, int8")


def layer_matmuls(graph: Any) -> list[str]:
    """MatMul nodes inside a transformer layer (their scope names a `layer`): the encoder
    body's projections, not the pooler or the task head, as the huggingface backend's
    int8_dynamic chooses (quantizing a masked LM's vocabulary projection moves fill-mask's
    top tokens)."""
    return [node.name for node in graph.node if node.op_type == "MatMul" and "/layer" in node.name]


def quantize_int8(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = layer_matmuls(onnx.load(str(source), load_external_data=False).graph)
    logger.info("quantizing %d MatMuls of %s to dynamic int8 (once)", len(nodes), source)
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=nodes or None,
        use_external_data_format=source.stat().st_size > EXTERNAL_DATA_BYTES,
        extra_options={"MatMulConstBOnly": True},
    )
