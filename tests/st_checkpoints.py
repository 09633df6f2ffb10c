"""Tiny sentence-transformers checkpoints, saved by sentence-transformers itself.

Each one is the tiny random BERT of tests/tiny_models.py (hidden 64, 2 heads) as a
`SentenceTransformer` with one combination of modules (Pooling modes, include_prompt, Dense with
an activation, a residual, LayerNorm, Normalize, Dropout, WeightedLayerPooling), prompts and
truncate_dim, written with `SentenceTransformer.save`: the files a user's checkpoint has.
Module weights are seeded, so every build is the same. Tests compare what hf-runtime serves for
them with `SentenceTransformer.encode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.tiny_models import HIDDEN_SIZE, build_bert_embed

PROMPTS = {"query": "query: ", "doc": "passage of text: "}


@dataclass(frozen=True)
class Checkpoint:
    """One combination. `modules`: ("dense", out, activation, bias, residual) / ("layernorm",)
    / ("normalize",) / ("dropout",) after the Pooling, in order."""

    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    modules: tuple[tuple[Any, ...], ...] = ()
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    safetensors: bool = True
    layer_start: int | None = None  # a WeightedLayerPooling from this layer (0: embeddings)


TANH = "Tanh"
CHECKPOINTS: dict[str, Checkpoint] = {
    **{
        f"pool-{mode}": Checkpoint(pooling=(mode,))
        for mode in ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
    },
    "pool-cls+mean+max": Checkpoint(pooling=("cls", "mean", "max"), modules=(("normalize",),)),
    "dense-tanh-normalize-prompts": Checkpoint(
        modules=(("dense", 24, TANH, True, False), ("normalize",)),
        prompts=PROMPTS,
        default_prompt_name="query",
    ),
    "exclude-prompt-weightedmean": Checkpoint(
        pooling=("weightedmean",), include_prompt=False, prompts=PROMPTS, default_prompt_name="doc"
    ),
    "exclude-prompt-cls+mean+lasttoken": Checkpoint(
        pooling=("cls", "mean", "lasttoken"),
        include_prompt=False,
        prompts=PROMPTS,
        default_prompt_name="query",
    ),
    # The common modern kind (EmbeddingGemma-like): a Dense, Normalize, prompts with a default;
    # its prompt's tokens are not pooled. vLLM's test and the e2e test serve this one.
    "dense-exclude-prompt-normalize": Checkpoint(
        include_prompt=False,
        modules=(("dense", 24, TANH, True, False), ("normalize",)),
        prompts=PROMPTS,
        default_prompt_name="query",
    ),
    "dense-identity-nobias-layernorm": Checkpoint(
        modules=(("dense", 32, "Identity", False, False), ("layernorm",)),
    ),
    "dense-gelu-residual-dropout-dense": Checkpoint(
        pooling=("max",),
        modules=(
            ("dense", 64, "GELU", True, True),
            ("dropout",),
            ("dense", 16, "ReLU", True, True),
            ("normalize",),
        ),
        prompts=PROMPTS,
    ),
    "weighted-layers-cls+mean-prompts": Checkpoint(
        pooling=("cls", "mean"),
        layer_start=1,
        modules=(("normalize",),),
        prompts=PROMPTS,
        default_prompt_name="query",
    ),
    "truncate-dim-normalize": Checkpoint(modules=(("normalize",),), truncate_dim=24),
    "dense-truncate-dim-bin-weights": Checkpoint(
        modules=(("dense", 48, TANH, True, False),),
        truncate_dim=20,
        prompts=PROMPTS,
        default_prompt_name="doc",
        safetensors=False,
    ),
}


def build_st_checkpoint(out: Path, spec: Checkpoint, bert_dir: Path | None = None) -> Path:
    """Save `spec` as a sentence-transformers checkpoint in `out`; returns `out`."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Dropout,
        LayerNorm,
        Normalize,
        Pooling,
        Transformer,
        WeightedLayerPooling,
    )

    if bert_dir is None:
        bert_dir = out.parent / f"{out.name}-bert"
        bert_dir.mkdir(parents=True, exist_ok=True)
        build_bert_embed(bert_dir)
    torch.manual_seed(7)
    modes = spec.pooling[0] if len(spec.pooling) == 1 else spec.pooling
    transformer = Transformer(str(bert_dir))
    modules: list[Any] = [transformer]
    if spec.layer_start is not None:
        # sentence-transformers only weighs layers a model outputs (saved in its config.json)
        transformer.model.config.output_hidden_states = True
        layers = transformer.model.config.num_hidden_layers
        weighting = WeightedLayerPooling(HIDDEN_SIZE, layers, layer_start=spec.layer_start)
        with torch.no_grad():
            weighting.layer_weights.uniform_(0.2, 2.0)
        modules.append(weighting)
    modules.append(Pooling(HIDDEN_SIZE, pooling_mode=modes, include_prompt=spec.include_prompt))
    size = HIDDEN_SIZE * len(spec.pooling)
    for module in spec.modules:
        if module[0] == "dense":
            _, width, activation, bias, residual = module
            dense = Dense(
                size,
                width,
                bias=bias,
                activation_function=getattr(torch.nn, activation)(),
                use_residual=residual,
            )
            with torch.no_grad():  # wider than the default init, so activations bend
                dense.linear.weight.normal_(0, 0.5)
                if bias:
                    dense.linear.bias.normal_(0, 0.5)
            modules.append(dense)
            size = width
        elif module[0] == "layernorm":
            norm = LayerNorm(size)
            with torch.no_grad():
                norm.norm.weight.normal_(1, 0.3)
                norm.norm.bias.normal_(0, 0.3)
            modules.append(norm)
        elif module[0] == "normalize":
            modules.append(Normalize())
        elif module[0] == "dropout":
            modules.append(Dropout(0.3))
    model = SentenceTransformer(
        modules=modules,
        prompts=dict(spec.prompts) or None,
        default_prompt_name=spec.default_prompt_name,
        truncate_dim=spec.truncate_dim,
        device="cpu",
    )
    model.save(str(out), safe_serialization=spec.safetensors)
    return out


@dataclass(frozen=True)
class SparseCheckpoint:
    """A SparseEncoder (SPLADE) over the tiny masked-LM BERT. `legacy`: the MLMTransformer
    module older checkpoints list, in place of v6's Transformer (fill-mask)."""

    strategy: str = "max"
    activation: str = "relu"
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    max_active_dims: int | None = None
    legacy: bool = False


SPARSE_CHECKPOINTS: dict[str, SparseCheckpoint] = {
    "splade-max": SparseCheckpoint(),
    "splade-sum-log1p-relu-legacy": SparseCheckpoint(
        strategy="sum", activation="log1p_relu", legacy=True
    ),
    "splade-prompts-max-active-dims": SparseCheckpoint(
        prompts=PROMPTS, default_prompt_name="query", max_active_dims=12
    ),
}


def build_sparse_checkpoint(out: Path, spec: SparseCheckpoint, mlm_dir: Path) -> Path:
    """Save `spec` as a SparseEncoder checkpoint in `out` (over the masked-LM BERT in
    `mlm_dir`, tests/tiny_models.build_bert_mlm); returns `out`."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        MLMTransformer,
        SpladePooling,
        Transformer,
    )

    transformer = (
        MLMTransformer(str(mlm_dir))
        if spec.legacy
        else Transformer(str(mlm_dir), transformer_task="fill-mask")
    )
    pooling = SpladePooling(spec.strategy, activation_function=spec.activation)
    model = SparseEncoder(
        modules=[transformer, pooling],
        prompts=dict(spec.prompts) or None,
        default_prompt_name=spec.default_prompt_name,
        max_active_dims=spec.max_active_dims,
        device="cpu",
    )
    model.save(str(out))
    return out
