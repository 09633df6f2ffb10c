"""Encoder models on transformers: tokenizer + AutoModelFor<task> and a blocking batched forward.

`HFEncoderBackend` is the huggingface backend's `hf_runtime.backends.EncoderBackend`. Imports
torch and transformers at module level: this module is only imported when an encoder model
loads. Every method but `aclose` blocks; callers run them off the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers

from hf_runtime.backends import Encoding, ForwardItem, ForwardSpec, LayerWeighting, TokenStrings
from hf_runtime.backends.huggingface.checkpoint import derive_max_model_len, resolve_dtype
from hf_runtime.backends.pooling import pool_hidden_states
from hf_runtime.backends.sentence_head import LayerWeights, SentenceHead
from hf_runtime.backends.tokenizer_rules import (
    encoder_max_length,
    encodings_from_batch,
    token_strings,
    tokenize_pairs,
    truncating_from,
)
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


class HFEncoderBackend:
    """A transformers encoder (sequence/token classification, masked LM or bare encoder).

    The tokenizer is shared by request threads and the inference thread; a lock serialises
    its use because a fast tokenizer raises "Already borrowed" when its settings change while
    another thread encodes.
    """

    def __init__(
        self,
        config: ModelConfig,
        source: ResolvedSource,
        task: Task,
        *,
        return_offsets: bool = False,
    ) -> None:
        self.task = task
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(config.dtype, source.hf_config, self.device.type == "cuda")
        self._add_special_tokens = not config.disable_special_tokens
        self._return_token_type_ids = config.return_token_type_ids
        self._return_offsets = return_offsets
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
        self._model = self._load_model(config, source)
        if self._tokenizer.pad_token is None:
            # KServe's fallback: add a [PAD] token and grow the embeddings to hold it.
            logger.warning("tokenizer has no padding token; adding [PAD]")
            self._tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            self._model.resize_token_embeddings(len(self._tokenizer))
        if getattr(self._model.config, "pad_token_id", None) is None:
            self._model.config.pad_token_id = self._tokenizer.pad_token_id
        self._feed_names = self._select_feed_names(config.tensor_input_names)
        self.padding_side: str = self._tokenizer.padding_side
        self.tokenize(["warm up"])  # fixes the tokenizer's truncation settings once

    def _load_model(self, config: ModelConfig, source: ResolvedSource) -> Any:
        model_cls = getattr(transformers, MODEL_CLASSES[self.task.spec.head])
        kwargs: dict[str, Any] = {
            "dtype": self.dtype,
            "trust_remote_code": config.trust_remote_code,
        }
        try:
            model = model_cls.from_pretrained(
                str(source.model_path), attn_implementation="sdpa", **kwargs
            )
        except (ValueError, ImportError) as exc:
            if "sdpa" not in str(exc).lower():
                raise
            logger.info("model has no SDPA attention; using its default (%s)", exc)
            model = model_cls.from_pretrained(str(source.model_path), **kwargs)
        return model.to(self.device).eval()

    def _select_feed_names(self, tensor_input_names: list[str] | None) -> tuple[str, ...]:
        parameters = inspect.signature(self._model.forward).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        produced = ["input_ids", "attention_mask"]
        # A cross-encoder reads which tokens are the document from token_type_ids, when its
        # tokenizer makes them (BERT's does; RoBERTa's has none) and its model takes them.
        pairs = (
            self.task.spec.pair_inputs
            and "token_type_ids" in self._tokenizer.model_input_names
            and (takes_any or "token_type_ids" in parameters)
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
        rejected = [n for n in names if not takes_any and n not in parameters]
        if rejected:
            raise ConfigError(
                f"{type(self._model).__name__} does not take {', '.join(rejected)}; remove it "
                "from tensor_input_names / turn off return_token_type_ids"
            )
        return tuple(names)

    # ------------------------------------------------------------------ properties

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def hidden_size(self) -> int:
        config = self._model.config
        for key in ("hidden_size", "d_model", "n_embd", "dim"):
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
        return int(self._model.get_input_embeddings().embedding_dim)

    @property
    def vocab_size(self) -> int:
        return int(self._model.get_input_embeddings().num_embeddings)

    @property
    def num_labels(self) -> int:
        return int(getattr(self._model.config, "num_labels", 0) or 0)

    @property
    def mask_token(self) -> str | None:
        token = self._tokenizer.mask_token
        return str(token) if token is not None else None

    @property
    def mask_token_id(self) -> int | None:
        return self._tokenizer.mask_token_id

    @property
    def model(self) -> Any:
        """The underlying transformers model (for tests and diagnostics)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    # ------------------------------------------------------------------ tokenizer

    def tokenize(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        add_special_tokens: bool | None = None,
        truncation_side: str = "right",
    ) -> list[Encoding]:
        """`truncate=False` keeps every token (auto_truncate: false refuses long texts)."""
        if add_special_tokens is None:
            add_special_tokens = self._add_special_tokens
        with self._lock, truncating_from(self._tokenizer, truncation_side):
            batch = self._tokenizer(
                list(texts),
                max_length=self._max_length,  # even untruncated: stops a "too long" warning
                truncation=truncate,
                padding=False,
                add_special_tokens=add_special_tokens,
                return_token_type_ids=self._return_token_type_ids,
                return_offsets_mapping=self._return_offsets,
                return_attention_mask=False,
            )
        return encodings_from_batch(batch, texts)

    def tokenize_pairs(
        self,
        firsts: Sequence[str],
        seconds: Sequence[str],
        *,
        truncate: bool = True,
        truncation_side: str = "right",
    ) -> list[Encoding]:
        with self._lock:
            return tokenize_pairs(
                self._tokenizer,
                firsts,
                seconds,
                max_length=self._max_length,
                truncate=truncate,
                add_special_tokens=self._add_special_tokens,
                token_type_ids=True if self._return_token_type_ids else None,
                truncation_side=truncation_side,
            )

    def encode_ids(self, token_ids: Sequence[Sequence[int]]) -> list[Encoding]:
        return [
            Encoding(
                input_ids=tuple(int(t) for t in ids),
                token_type_ids=(0,) * len(ids) if self._return_token_type_ids else None,
            )
            for ids in token_ids
        ]

    def decode(self, token_ids: Sequence[int]) -> str:
        with self._lock:
            return str(self._tokenizer.decode(list(token_ids)))

    def token_strings(self, token_ids: Sequence[int]) -> TokenStrings:
        with self._lock:
            return token_strings(self._tokenizer, token_ids)

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
            layers = getattr(self._model.config, "num_hidden_layers", None)
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

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[np.ndarray]:
        """One padded forward pass over `items`; per item a float32 array:
        pooled [H*modes] (through the spec's sentence modules) / sequence logits [C] / token
        logits [positions, C]."""
        if not items:
            return []
        inputs, starts = self._pad(items)
        feed = {name: inputs[name] for name in self._feed_names if name in inputs}
        weighting = spec.layer_weighting
        with torch.inference_mode():
            if weighting is not None:
                output = self._model(**feed, return_dict=True, output_hidden_states=True)
                if weighting not in self._layer_weights:
                    self.prepare(spec)
                states = self._layer_weights[weighting](output.hidden_states)
            else:
                output = self._model(**feed, return_dict=True)
                states = output.last_hidden_state if spec.pooling else None
            if spec.pooling:
                pooled = pool_hidden_states(
                    states,
                    inputs["attention_mask"],
                    spec.pooling,
                    [item.prompt_length for item in items],
                )
                if spec.sentence_modules:
                    pooled = self._head(spec)(pooled)
                vectors = list(pooled.float().cpu().numpy())
                for row, (item, start) in enumerate(zip(items, starts, strict=True)):
                    if item.token_states:  # the real tokens' rows, unpooled
                        window = states[row, start : start + len(item.encoding)]
                        vectors[row] = window.float().cpu().numpy()
                return vectors
            logits = output.logits
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

    def close(self) -> None:
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def load_hf_encoder(
    config: ModelConfig, source: ResolvedSource, task: Task, *, return_offsets: bool = False
) -> HFEncoderBackend:
    """Blocking: load tokenizer and model. Raises ConfigError for unusable settings."""
    if task.spec.head not in MODEL_CLASSES:
        raise ConfigError(f"task {task.value} is not an encoder task")
    return HFEncoderBackend(config, source, task, return_offsets=return_offsets)
