"""A sentence-transformers checkpoint's modules after Pooling, in torch: Dense, LayerNorm,
Normalize, computed as sentence-transformers computes them (and WeightedLayerPooling, before
it).

The task processor describes them (`hf_runtime.backends.SentenceModule`, read from the
checkpoint's `modules.json`); a backend builds them once when the model loads (`prepare`, so
a missing weight file or an unknown activation fails the load) and applies them to the pooled
vectors in its inference thread. They run in float32 on the pooled vectors' device. Imports
torch: only backends import this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import torch

from hf_runtime.backends import (
    DenseModule,
    LayerNormModule,
    LayerWeighting,
    NormalizeModule,
    SentenceModule,
)
from hf_runtime.errors import ConfigError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class SentenceHead(torch.nn.Module):
    """The modules, in order; `forward` maps [B, D_in] pooled vectors to [B, D_out]."""

    def __init__(self, modules: Sequence[SentenceModule], device: torch.device) -> None:
        super().__init__()
        self.steps = torch.nn.ModuleList(_build(module) for module in modules)
        self.to(device).eval()

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        vectors = pooled.float()
        for step in self.steps:
            vectors = step(vectors)
        return vectors


class _Dense(torch.nn.Module):
    """sentence-transformers' Dense: activation(linear(x)), plus the residual when saved so."""

    def __init__(self, spec: DenseModule) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        self.activation_function = _activation(spec.activation)
        self.use_residual = spec.residual
        if spec.residual and spec.in_features != spec.out_features:
            self.residual = torch.nn.Linear(spec.in_features, spec.out_features, bias=False)
        _load_weights(self, spec.folder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.activation_function(self.linear(x))
        if self.use_residual:
            out = out + (self.residual(x) if hasattr(self, "residual") else x)
        return out


class _LayerNorm(torch.nn.Module):
    def __init__(self, spec: LayerNormModule) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(spec.dimension)
        _load_weights(self, spec.folder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class _Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, p=2, dim=-1)


class LayerWeights(torch.nn.Module):
    """sentence-transformers' WeightedLayerPooling: the layers' states, weighted."""

    def __init__(self, spec: LayerWeighting, device: torch.device) -> None:
        super().__init__()
        count = spec.num_hidden_layers + 1 - spec.layer_start
        self.layer_start = spec.layer_start
        self.layer_weights = torch.nn.Parameter(torch.ones(count))
        _load_weights(self, spec.folder)
        self.to(device).eval()

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        """(embeddings, layer 1, ...) [B, L, H] each -> [B, L, H]."""
        layers = torch.stack([state.float() for state in hidden_states])[self.layer_start :]
        weights = self.layer_weights.view(-1, 1, 1, 1).expand(layers.size())
        return (weights * layers).sum(dim=0) / self.layer_weights.sum()


def _build(module: SentenceModule) -> torch.nn.Module:
    if isinstance(module, DenseModule):
        return _Dense(module)
    if isinstance(module, LayerNormModule):
        return _LayerNorm(module)
    if isinstance(module, NormalizeModule):
        return _Normalize()
    raise ConfigError(f"unknown sentence module {module!r}")


def _activation(path: str) -> torch.nn.Module:
    """The torch.nn module class a Dense saved (e.g. torch.nn.modules.activation.Tanh),
    instantiated with its defaults as sentence-transformers does. Only torch.nn classes:
    sentence-transformers too only imports others with trust_remote_code."""
    module_name, _, class_name = path.rpartition(".")
    cls = None
    if path.startswith("torch.nn.") and module_name:
        try:
            cls = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ConfigError(
            f"Dense activation_function {path!r} is not a torch.nn module class "
            "(e.g. torch.nn.modules.activation.Tanh, torch.nn.modules.linear.Identity)"
        )
    return cls()


def _load_weights(module: torch.nn.Module, folder: str) -> None:
    """The module's weights from its folder, as sentence-transformers saves them: every
    parameter present, nothing extra."""
    found = [Path(folder) / name for name in WEIGHT_FILES if (Path(folder) / name).is_file()]
    path = found[0] if found else None
    if path is None:
        raise ConfigError(f"{folder}: no {' or '.join(WEIGHT_FILES)} with the module's weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        module.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the module's weights: {exc}") from None
