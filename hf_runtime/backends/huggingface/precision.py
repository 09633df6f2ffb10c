"""Opt-in faster precisions for encoders: half-precision hardware checks, dynamic int8.

Nothing here is chosen by itself: `dtype: auto` stays KServe's rule (`checkpoint.resolve_dtype`)
and `quantization` is unset unless the configuration names it, because both change the numbers
a model returns (benchmarks/precision.py measures by how much). Imports torch: import it only
when a model loads.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from hf_runtime.errors import ConfigError

logger = logging.getLogger("hf_runtime")

INT8_DYNAMIC = "int8_dynamic"

# CPU features that compute in a half precision natively: x86 names as
# torch.cpu.get_capabilities() reports them, aarch64 names as /proc/cpuinfo lists them.
# Without one, PyTorch still runs the dtype (it converts to float32 inside its kernels),
# only more slowly than float32 itself and less accurately.
NATIVE_FEATURES: dict[torch.dtype, tuple[str, ...]] = {
    torch.bfloat16: ("avx512_bf16", "amx_bf16", "bf16"),
    torch.float16: ("avx512_fp16", "amx_fp16", "asimdhp"),
}
# u8 x s8 dot products that accumulate in 32 bits: with them int8 activations may use the
# full 8-bit range; without them fbgemm's 16-bit intermediate sums can saturate, so PyTorch's
# default of 7-bit activations (reduce_range) stays.
VNNI_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


@lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """Lower-case feature names of this CPU, from PyTorch's cpuinfo and /proc/cpuinfo."""
    names: set[str] = set()
    try:
        capabilities = torch.cpu.get_capabilities()  # type: ignore[attr-defined]
        names.update(str(key) for key, value in capabilities.items() if value is True)
    except (AttributeError, RuntimeError):  # an older torch, or cpuinfo failed
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("flags", "features"):
                names.update(value.split())
    except OSError:
        pass
    return frozenset(name.lower() for name in names)


def native_on_cpu(dtype: torch.dtype, features: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes `dtype` natively (float32 always)."""
    wanted = NATIVE_FEATURES.get(dtype)
    if wanted is None:
        return True
    present = cpu_features() if features is None else features
    return any(name in present for name in wanted)


def check_half_precision(
    dtype: torch.dtype, device: torch.device, features: frozenset[str] | None = None
) -> bool:
    """Warn when a half precision runs on a CPU that only emulates it; True when native.

    A warning, not an error: the dtype is still honoured and correct (KServe accepts it on
    any CPU), and a configuration written for a bf16-capable node must not stop a fallback
    node from starting; the log says what it costs and how to avoid it.
    """
    if device.type != "cpu" or native_on_cpu(dtype, features):
        return True
    name = str(dtype).removeprefix("torch.")
    wanted = " / ".join(NATIVE_FEATURES[dtype]).upper()
    logger.warning(
        "dtype %s on a CPU without %s: PyTorch emulates it, usually more slowly than "
        "float32 and with %s rounding; set dtype: float32 (or auto) on this machine",
        name, wanted, name,
    )  # fmt: skip
    return False


@lru_cache(maxsize=1)
def _full_range_linear() -> type:
    """PyTorch's dynamic int8 Linear with 8-bit instead of 7-bit activations.

    Its stock `forward` always passes reduce_range=True, which halves the activation
    resolution to stay safe on CPUs without VNNI; on MiniLM that alone doubles the error.
    Used only where VNNI (or an equivalent) is present. Built on first use, so a torch
    without torch.ao only fails the models that ask for int8.
    """
    from torch.ao.nn.quantized.dynamic import Linear

    class FullRangeDynamicLinear(Linear):  # type: ignore[misc]
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            out = torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False)
            return out.to(x.dtype)  # type: ignore[no-any-return]

    return FullRangeDynamicLinear


def quantizable_linears(model: Any) -> list[str]:
    """Names of the Linear layers int8_dynamic converts: the encoder body's, not the pooler
    or the task head, which sit right on the output and cost little (a masked LM's vocab
    projection is the exception in cost, but quantizing it moves fill-mask's top tokens)."""
    body = getattr(model, "base_model", model)
    prefix = getattr(model, "base_model_prefix", "")
    names = []
    for name, module in body.named_modules():
        if isinstance(module, torch.nn.Linear) and "pooler" not in name.split("."):
            full = f"{prefix}.{name}" if body is not model and prefix else name
            names.append(full)
    return names


def quantize_int8_dynamic(
    model: Any,
    device: torch.device,
    dtype: torch.dtype,
    features: frozenset[str] | None = None,
) -> int:
    """Convert the encoder body's Linear layers to dynamic int8, in place; how many.

    int8 weights per output channel, activations quantized per forward pass (scales from
    the whole padded batch, so a text's output moves slightly with its batch-mates).
    """
    if device.type != "cpu":
        raise ConfigError(
            f"quantization: {INT8_DYNAMIC} runs on CPU only (PyTorch's dynamic int8 kernels "
            f"are CPU kernels), and this model is on {device.type}; on a GPU use dtype: "
            "float16 or bfloat16"
        )
    if dtype != torch.float32:
        raise ConfigError(
            f"quantization: {INT8_DYNAMIC} converts float32 weights, but the model loads as "
            f"{str(dtype).removeprefix('torch.')}; set dtype: float32"
        )
    if torch.backends.quantized.engine in (None, "none"):
        raise ConfigError(
            f"quantization: {INT8_DYNAMIC}: this PyTorch build has no quantized engine "
            f"(supported: {torch.backends.quantized.supported_engines})"
        )
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:  # torch.ao.quantization is deprecated upstream
        raise ConfigError(
            f"quantization: {INT8_DYNAMIC} needs torch.ao.quantization, which this PyTorch "
            f"lacks ({exc}); remove the setting"
        ) from None

    names = quantizable_linears(model)
    present = cpu_features() if features is None else features
    full_range = any(name in present for name in VNNI_FEATURES)
    mapping = {torch.nn.Linear: _full_range_linear()} if full_range else None
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the eager dynamic path used
        # here still ships and is what the accuracy table measures.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize_dynamic(
            model,
            qconfig_spec=dict.fromkeys(names, per_channel_dynamic_qconfig),
            mapping=mapping,
            inplace=True,
        )
    logger.info(
        "quantization %s: %d Linear layers to int8 (per-channel weights, %s activations)",
        INT8_DYNAMIC, len(names), "8-bit" if full_range else "7-bit (no VNNI)",
    )  # fmt: skip
    return len(names)
