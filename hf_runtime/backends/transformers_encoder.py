"""What every encoder backend running a transformers checkpoint shares, whatever runs the model.

`TransformersEncoder` is the tokenizer side (KServe's tokenizer settings, tokenizing, padding a
batch) and the output side (pooling, sentence-transformers modules, picking logits per item) of
an `hf_runtime.backends.EncoderBackend`. A subclass loads and runs the model itself: the
huggingface backend on torch, the onnxruntime backend on an ONNX Runtime session. Both then
tokenize, pad and post-process identically, so their outputs differ only by what the model's
arithmetic differs. Imports torch and transformers: only backends import it, when a model loads.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers

from hf_runtime.backends import ForwardItem, ForwardSpec, LayerWeighting
from hf_runtime.backends.checkpoint import derive_max_model_len
from hf_runtime.backends.pooling import pool_hidden_states, pool_vocabulary_logits
from hf_runtime.backends.sentence_head import LayerWeights, SentenceHead
from hf_runtime.backends.tokenizer_rules import encoder_max_length
from hf_runtime.backends.tokenizer_side import TokenizerSide
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import ResolvedSource
from hf_runtime.tasks.registry import Head, Task

logger = logging.getLogger("hf_runtime")

# The transformers class of each encoder head a task runs on (see tasks.registry).
MODEL_CLASSES: dict[Head, str] = {
    Head.sequence_classification: "AutoModelForSequenceClassification",
    Head.token_classification: "AutoModelForTokenClassification",
    Head.masked_lm: "AutoModelForMaskedLM",
    Head.base: "AutoModel",
}
PAD_TOKEN = "[PAD]"  # KServe's fallback for a tokenizer without one


class TransformersEncoder(TokenizerSide, ABC):
    """A transformers encoder checkpoint behind its tokenizer: the backend-neutral half.

    The tokenizer methods are `TokenizerSide`'s. A subclass implements `_configure` (sets
    `device`, first), `_load_model` (called once the tokenizer is ready; `added_pad_token`
    tells it the tokenizer grew a [PAD] token), the model's facts and `_run_model`.
    """

    device: torch.device

    def __init__(
        self,
        config: ModelConfig,
        source: ResolvedSource,
        task: Task,
        *,
        return_offsets: bool = False,
    ) -> None:
        self._configure(config, source)
        self.task = task
        self._add_special_tokens = not config.disable_special_tokens
        self._return_token_type_ids = config.return_token_type_ids
        self._lock = threading.Lock()
        self._heads: dict[ForwardSpec, SentenceHead] = {}
        self._layer_weights: dict[LayerWeighting, LayerWeights] = {}
        derived = derive_max_model_len(source.hf_config, config.max_model_len)

        self._tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(source.tokenizer_path),
            do_lower_case=not config.disable_lower_case,  # KServe lower-cases by default
            trust_remote_code=config.trust_remote_code,
        )
        if return_offsets and not self._tokenizer.is_fast:
            raise ConfigError(
                "return_offsets_mapping needs a fast (tokenizers-backed) tokenizer; "
                f"{type(self._tokenizer).__name__} is not one"
            )
        # A task that reads token offsets (token classification's entity grouping) keeps
        # every token's offsets (and its text) whenever the tokenizer can give them; only
        # return_offsets_mapping puts them in the output.
        self._return_offsets = return_offsets or (
            task.spec.token_offsets and bool(self._tokenizer.is_fast)
        )
        self._max_length = encoder_max_length(derived, self._tokenizer, config.max_model_len)
        added_pad_token = self._tokenizer.pad_token is None
        if added_pad_token:
            # KServe's fallback: add a [PAD] token (the model grows its embeddings to hold it).
            logger.warning("tokenizer has no padding token; adding %s", PAD_TOKEN)
            self._tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        self._load_model(config, source, added_pad_token)
        self._feed_names = self._select_feed_names(config.tensor_input_names)
        self.padding_side: str = self._tokenizer.padding_side
        self.tokenize(["warm up"])  # fixes the tokenizer's truncation settings once

    # ------------------------------------------------------------------ the subclass's part

    @abstractmethod
    def _configure(self, config: ModelConfig, source: ResolvedSource) -> None:
        """Set `device` (and what `_load_model` reads) before the tokenizer loads."""

    @abstractmethod
    def _load_model(self, config: ModelConfig, source: ResolvedSource, added_pad_token: bool):
        """Load the model (ConfigError for unusable settings)."""

    @abstractmethod
    def _accepted_inputs(self) -> tuple[frozenset[str] | None, str]:
        """(the input names the model takes, None for any; its name for error messages)."""

    @abstractmethod
    def _run_model(self, feed: dict[str, torch.Tensor], spec: ForwardSpec) -> torch.Tensor:
        """The padded batch through the model: hidden states [B, L, H] when `spec` pools (the
        layer-weighted ones with a layer weighting), else logits [B, C] or [B, L, C]."""

    @property
    @abstractmethod
    def ready(self) -> bool: ...

    @property
    @abstractmethod
    def hidden_size(self) -> int: ...

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def num_labels(self) -> int: ...

    @property
    @abstractmethod
    def num_hidden_layers(self) -> int | None: ...

    # ------------------------------------------------------------------ properties

    @property
    def failure(self) -> str | None:
        return None  # no engine of its own that could die

    @property
    def mask_token(self) -> str | None:
        token = self._tokenizer.mask_token
        return str(token) if token is not None else None

    @property
    def mask_token_id(self) -> int | None:
        return self._tokenizer.mask_token_id

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _select_feed_names(self, tensor_input_names: list[str] | None) -> tuple[str, ...]:
        accepted, model_name = self._accepted_inputs()
        produced = ["input_ids", "attention_mask"]
        # A cross-encoder reads which tokens are the document from token_type_ids, when its
        # tokenizer makes them (BERT's does; RoBERTa's has none) and its model takes them.
        pairs = (
            self.task.spec.pair_inputs
            and "token_type_ids" in self._tokenizer.model_input_names
            and (accepted is None or "token_type_ids" in accepted)
        )
        if self._return_token_type_ids or pairs:
            produced.append("token_type_ids")
        names = list(tensor_input_names) if tensor_input_names else produced
        unknown = [n for n in names if n not in produced]
        if unknown:
            raise ConfigError(
                f"tensor_input_names: {', '.join(unknown)} not produced by the tokenizer; "
                f"available: {', '.join(produced)} (token_type_ids needs return_token_type_ids)"
            )
        rejected = [n for n in names if accepted is not None and n not in accepted]
        if rejected:
            raise ConfigError(
                f"{model_name} does not take {', '.join(rejected)}; remove it "
                "from tensor_input_names / turn off return_token_type_ids"
            )
        return tuple(names)

    # ------------------------------------------------------------------ forward

    def _pad(self, items: Sequence[ForwardItem]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Padded model inputs (on device) and each row's first real position."""
        pad_len = max(1, max(item.padded_length for item in items))
        pad_id = self._tokenizer.pad_token_id
        pad_type = self._tokenizer.pad_token_type_id
        left = self.padding_side == "left"
        ids, mask, types, starts = [], [], [], []
        for item in items:
            enc = item.encoding
            fill = pad_len - len(enc)
            start = fill if left else 0
            starts.append(start)
            before, after = ([0] * fill, []) if left else ([], [0] * fill)
            ids.append([pad_id] * start + list(enc.input_ids) + [pad_id] * (fill - start))
            mask.append(before + [1] * len(enc) + after)
            if enc.token_type_ids is not None:
                type_ids = list(enc.token_type_ids)
                types.append([pad_type] * start + type_ids + [pad_type] * (fill - start))
        tensors = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }
        if types and len(types) == len(items):
            tensors["token_type_ids"] = torch.tensor(types, dtype=torch.long)
        return {k: v.to(self.device) for k, v in tensors.items()}, starts

    def prepare(self, spec: ForwardSpec) -> None:
        self._head(spec)
        weighting = spec.layer_weighting
        if weighting is not None and weighting not in self._layer_weights:
            layers = self.num_hidden_layers
            if layers != weighting.num_hidden_layers:
                raise ConfigError(
                    f"WeightedLayerPooling in {weighting.folder} weighs "
                    f"{weighting.num_hidden_layers} layers; the model has {layers}"
                )
            self._layer_weights[weighting] = LayerWeights(weighting, self.device)

    def _head(self, spec: ForwardSpec) -> SentenceHead:
        """The spec's sentence modules, built once (at load, through `prepare`)."""
        head = self._heads.get(spec)
        if head is None:
            head = self._heads[spec] = SentenceHead(spec.sentence_modules, self.device)
        return head

    def _layer_weighted(
        self, hidden_states: Sequence[torch.Tensor], weighting: LayerWeighting
    ) -> torch.Tensor:
        """sentence-transformers' WeightedLayerPooling of (embeddings, layer 1, ...)."""
        if weighting not in self._layer_weights:
            self.prepare(ForwardSpec(layer_weighting=weighting))
        return self._layer_weights[weighting](hidden_states)

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[np.ndarray]:
        """One padded forward pass over `items`; per item a float32 array:
        pooled [H*modes] (through the spec's sentence modules) / SPLADE vector [V] / sequence
        logits [C] / token logits [positions, C]."""
        if not items:
            return []
        inputs, starts = self._pad(items)
        feed = {name: inputs[name] for name in self._feed_names if name in inputs}
        with torch.inference_mode():
            output = self._run_model(feed, spec)
            if spec.sparse is not None:  # masked-LM logits [B, L, V], pooled per text
                vectors = pool_vocabulary_logits(output, inputs["attention_mask"], spec.sparse)
                return list(vectors.cpu().numpy())
            if spec.pooling:
                pooled = pool_hidden_states(
                    output,
                    inputs["attention_mask"],
                    spec.pooling,
                    [item.prompt_length for item in items],
                )
                if spec.sentence_modules:
                    pooled = self._head(spec)(pooled)
                vectors = list(pooled.float().cpu().numpy())
                for row, (item, start) in enumerate(zip(items, starts, strict=True)):
                    if item.token_states:  # the real tokens' rows, unpooled
                        window = output[row, start : start + len(item.encoding)]
                        vectors[row] = window.float().cpu().numpy()
                return vectors
            return self._select_logits(output, items, starts)

    def _select_logits(
        self, logits: torch.Tensor, items: Sequence[ForwardItem], starts: list[int]
    ) -> list[np.ndarray]:
        """Sequence logits per row, or each item's wanted token positions."""
        if logits.ndim == 2:
            return list(logits.float().cpu().numpy())
        pad_len = logits.shape[1]
        left = self.padding_side == "left"
        selected = []
        for row, (item, start) in enumerate(zip(items, starts, strict=True)):
            if item.positions is not None:
                index = [start + p for p in item.positions]
            else:  # the item's own padded window (ends at pad_len when padding left)
                first = pad_len - item.padded_length if left else 0
                index = list(range(first, first + item.padded_length))
            selected.append(logits[row, torch.tensor(index, dtype=torch.long)])
        sizes = [t.shape[0] for t in selected]
        flat = torch.cat(selected).float().cpu().numpy()
        bounds = np.cumsum([0, *sizes])
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(items))]
