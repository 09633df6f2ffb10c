"""Text embeddings: a sentence-transformers checkpoint's vectors, L2-normalised by default.

The pipeline is the checkpoint's (`hf_runtime.tasks.st_checkpoint`): pooled last hidden states
(its Pooling's modes: cls / mean / max / mean_sqrt_len / weightedmean / lasttoken,
concatenated when several are on; mean, as KServe, without one), then its Dense / LayerNorm /
Normalize modules, run by the backend. Its prompts are prepended as SentenceTransformer.encode
does (the default one unless a request names another: `hf_runtime.tasks.embedding_base`, which
also checks OpenAI's token-id inputs), their tokens left out of the pooling when the Pooling
says `include_prompt: false`; `truncate_dim` keeps the first values. Every
vector is then L2-normalised, as KServe does (`normalize_embeddings: false` keeps
sentence-transformers' own vectors). V1 per text: the vector (list of float); V2: FP64
[n, dim] (KServe's datatype). `embedding_result` serves OpenAI and TEI: `dimensions`
(truncate, then normalise); `cosine_scores` the rerank and score routes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_runtime.backends import (
    POOLING_MODES,
    DenseModule,
    EncoderBackend,
    Encoding,
    ForwardSpec,
    LayerNormModule,
    NormalizeModule,
)
from hf_runtime.errors import ConfigError, InvalidInput
from hf_runtime.tasks.base import OUTPUT_NAME, ProcessorOptions, kserve_output_tensor
from hf_runtime.tasks.embedding_base import EmbeddingProcessor, is_token_id
from hf_runtime.tasks.registry import Task
from hf_runtime.tasks.st_checkpoint import (
    DEFAULT_POOLING,
    SentenceTransformerSettings,
    read_settings,
)
from hf_runtime.types import Prediction, TensorSpec

logger = logging.getLogger("hf_runtime")

_POOLING_NAMES = frozenset(POOLING_MODES)


def read_pooling_modes(model_path: Path) -> tuple[str, ...]:
    """The pooling modes a sentence-transformers checkpoint declares; mean when none (or when
    its files cannot be read: loading the model then names the problem)."""
    try:
        return read_settings(Path(model_path)).pooling
    except ConfigError:
        return DEFAULT_POOLING


def l2_normalize(vector: np.ndarray) -> np.ndarray:
    """torch.nn.functional.normalize(p=2): divide by max(norm, 1e-12), in float32."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = np.float32(np.sqrt(np.sum(vector * vector, dtype=np.float32)))
    return vector / max(norm, np.float32(1e-12))


class TextEmbeddingProcessor(EmbeddingProcessor):
    task = Task.text_embedding

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        settings: SentenceTransformerSettings | None = None,
    ) -> None:
        """Blocking (tokenizes the prompts, loads the modules' weights): call it off the loop.
        ConfigError for a pipeline the model or the backend cannot run."""
        settings = settings or SentenceTransformerSettings()
        super().__init__(backend, options, settings.prompts, settings.default_prompt_name)
        unknown = [mode for mode in settings.pooling if mode not in _POOLING_NAMES]
        if unknown or not settings.pooling:
            raise ValueError(f"unknown pooling mode(s) {unknown}; known: {sorted(_POOLING_NAMES)}")
        self.pooling = tuple(settings.pooling)
        self.full_dimension = self._check_dimensions(settings)
        truncate = settings.truncate_dim
        self.dimension = min(truncate, self.full_dimension) if truncate else self.full_dimension
        # A prompt's tokens (special tokens before it included, a special token closing it
        # not) that pooling leaves out, as SentenceTransformer measures them.
        self._prompt_lengths: dict[str, int] = {}
        if not settings.include_prompt:
            for text in {*self.prompts.values(), self.default_prompt or ""} - {""}:
                self._prompt_lengths[text] = self._measure_prompt(text)
        modules = list(settings.modules)
        while options.normalize_embeddings and modules and isinstance(modules[-1], NormalizeModule):
            modules.pop()  # the final L2 normalisation gives the same direction
        self._spec = ForwardSpec(
            pooling=self.pooling,
            sentence_modules=tuple(modules),
            layer_weighting=settings.layer_weighting,
        )
        backend.prepare(self._spec)

    def _check_dimensions(self, settings: SentenceTransformerSettings) -> int:
        """The vector size out of the modules; ConfigError where one does not fit the last."""
        hidden = self.backend.hidden_size
        if settings.pooled_dimension is not None and settings.pooled_dimension != hidden:
            raise ConfigError(
                f"the Pooling module pools {settings.pooled_dimension} values per token; the "
                f"model's hidden size is {hidden}"
            )
        size = hidden * len(settings.pooling)
        for module in settings.modules:
            wanted = (
                module.in_features
                if isinstance(module, DenseModule)
                else module.dimension
                if isinstance(module, LayerNormModule)
                else size
            )
            if wanted != size:
                kind = type(module).__name__.removesuffix("Module")
                raise ConfigError(
                    f"{kind} in {getattr(module, 'folder', '')} takes {wanted} values; the "
                    f"modules before it give {size}"
                )
            if isinstance(module, DenseModule):
                size = module.out_features
        return size

    def _measure_prompt(self, prompt: str) -> int:
        ids = self.backend.tokenize([prompt])[0].input_ids
        closes = bool(ids) and self.backend.token_strings(ids[-1:]).special[0]
        return len(ids) - 1 if closes else len(ids)

    @property
    def forward_spec(self) -> ForwardSpec:
        return self._spec

    def prompt_length(self, options: ProcessorOptions | None = None) -> int:
        prompt = self.prompt(options)
        return self._prompt_lengths.get(prompt, 0) if prompt else 0

    # ------------------------------------------------------------------ vectors

    def vectors(
        self, outputs: Sequence[Any], dimensions: int | None, normalize: bool | None = None
    ) -> list[np.ndarray]:
        """The served vectors: the first `dimensions` (else truncate_dim) values, then
        L2-normalised unless `normalize_embeddings` is off (`normalize` overrides it)."""
        size = dimensions or self.dimension
        unit = self.options.normalize_embeddings if normalize is None else normalize
        vectors = []
        for vector in outputs:
            values = np.asarray(vector, dtype=np.float32)
            if size < len(values):
                values = values[:size]
            vectors.append(l2_normalize(values) if unit else values)
        return vectors

    def postprocess(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        options: ProcessorOptions | None = None,
    ) -> Prediction:
        predictions = [vector.tolist() for vector in self.vectors(outputs, None)]
        return Prediction(predictions, [kserve_output_tensor(predictions)])

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(OUTPUT_NAME, "FP64", [-1, self.dimension])]

    def check_dimensions(self, dimensions: int | None) -> None:
        if dimensions is None:
            return
        if not is_token_id(dimensions) or not 1 <= dimensions <= self.dimension:
            raise InvalidInput(
                f"dimensions must be an integer from 1 to {self.dimension} (this model's "
                f"embedding size), got {dimensions!r}",
                param="dimensions",
            )


def cosine_scores(
    first: Sequence[Sequence[float]], second: Sequence[Sequence[float]]
) -> list[float]:
    """Score (rerank / score routes) of each vector of `second` against `first[0]` (one
    vector) or the vector at the same index: the cosine similarity of the normalised
    embeddings, i.e. their dot product, summed in float64 as a client would from the
    embeddings route's values."""
    left = np.asarray(first, dtype=np.float64)
    right = np.asarray(second, dtype=np.float64)
    return [float(value) for value in np.sum(left * right, axis=1)]


def build_processor(
    backend: EncoderBackend, options: ProcessorOptions, model_path: Path
) -> TextEmbeddingProcessor:
    """Blocking: the processor for the checkpoint folder's sentence-transformers settings."""
    return TextEmbeddingProcessor(backend, options, read_settings(Path(model_path)))
