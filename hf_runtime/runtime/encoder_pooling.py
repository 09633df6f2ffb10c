"""The Pooler capability of an encoder model: vLLM's /pooling and /classify outputs.

Backend-neutral, like the model it serves: the same task processor and batcher as every other
route, so a text's pooled output here is the one the model's other routes compute: an
embedding model's vector equals its /v1/embeddings vector (same prompt, pooling, modules and
normalisation), a classifier's logits are the V1/V2 predict logits with vLLM's activation
(`hf_runtime.tasks.class_scores`), a cross-encoder's score equals its /rerank score. On the
vllm backend the forward pass runs in vLLM's pooling runner (raw per-token states or logits,
see `hf_runtime.backends.vllm.encoder_backend`): vLLM's own poolers would pool with their
defaults, not the checkpoint's sentence-transformers settings, and the two backends would
then disagree.

Inputs are tokenized in a worker thread (their truncation options are per request, so they
cannot share the batcher's tokenizer call) and run as one job of the model's batcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_runtime.backends import Encoding
from hf_runtime.errors import InvalidInput
from hf_runtime.runtime.batcher import EncoderJob
from hf_runtime.tasks.base import too_long
from hf_runtime.types import OutputOptions, PooledResult, PoolingOptions, PoolingTask

if TYPE_CHECKING:
    from hf_runtime.runtime.encoder_model import EncoderModel

PARAM = "input"


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_pooling_inputs(inputs: Any) -> list[str] | list[list[int]]:
    """vLLM's `input`: a text, a list of texts, a token-id list or a list of them."""
    if isinstance(inputs, str):
        return [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise InvalidInput(
            "input must be a string, a non-empty list of strings, a list of token ids or a "
            "list of token-id lists",
            param=PARAM,
        )
    if all(isinstance(x, str) for x in inputs):
        return list(inputs)
    if all(_is_id(x) for x in inputs):
        return [list(inputs)]
    if all(isinstance(x, (list, tuple)) for x in inputs):
        for index, ids in enumerate(inputs):
            if not ids or not all(_is_id(x) for x in ids):
                raise InvalidInput(
                    f"input {index} must be a non-empty list of token ids", param=PARAM
                )
        return [list(ids) for ids in inputs]
    raise InvalidInput("input must be all strings or all token-id lists, not a mix", param=PARAM)


class EncoderPooler:
    """`hf_runtime.model.Pooler` over an EncoderModel of a pooling task (text_embedding,
    sparse_embedding: its vector written out densely, as vLLM pools a SPLADE model;
    sequence_classification, rerank)."""

    def __init__(self, model: EncoderModel) -> None:
        from hf_runtime.tasks.embedding_base import EmbeddingProcessor

        self._model = model
        processor = model.processor
        self._embedding = processor if isinstance(processor, EmbeddingProcessor) else None
        self._head = processor.classifier_head
        if self._embedding is None and self._head is None:
            raise TypeError(f"task {model.task} has no pooled output")  # tasks.registry's bug

    @property
    def pooling_task(self) -> PoolingTask:
        return "embed" if self._embedding is not None else "classify"

    @property
    def max_input_tokens(self) -> int:
        return self._model.encoder.max_length

    async def pool(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        options: PoolingOptions | None = None,
    ) -> PooledResult:
        options = options or PoolingOptions()
        limit = self._truncation(options)
        if self._embedding is not None:
            self._embedding.check_dimensions(options.dimensions)
        decoded = decode_pooling_inputs(inputs)
        most = self._model.batcher.max_queue_size
        if len(decoded) > most:  # checked before tokenizing what could never run
            raise InvalidInput(
                f"this request has {len(decoded)} inputs; model {self._model.name} takes at "
                f"most {most} per request (batching.max_queue_size): split it",
                param=PARAM,
            )
        # Blocking: tokenizing (or checking) up to thousands of inputs is not loop work.
        items = await asyncio.to_thread(self._items, decoded, options, limit)
        encodings = [item.encoding for item in items]

        def finish(_: list[Encoding], outputs: list[Any]) -> PooledResult:
            return self._result(encodings, outputs, options)

        return await self._model.batcher.run(EncoderJob(items, finish=finish))

    def _truncation(self, options: PoolingOptions) -> int | None:
        """The tokens each input keeps (None: the model's own rule), checked as vLLM does."""
        asked = options.truncate_tokens
        if asked is None:
            return None
        limit = self.max_input_tokens
        if asked == -1:
            return limit
        if asked < 1:
            raise InvalidInput(
                f"truncate_prompt_tokens must be -1 (the model's maximum) or at least 1, got "
                f"{asked}",
                param="truncate_prompt_tokens",
            )
        if asked > limit:
            raise InvalidInput(
                f"truncate_prompt_tokens={asked} cannot be greater than max_model_len = "
                f"{limit}. Please request a smaller truncation size.",
                param="truncate_prompt_tokens",
            )
        return asked

    # ------------------------------------------------------------------ inference thread

    def _items(self, decoded: list[Any], options: PoolingOptions, limit: int | None) -> list[Any]:
        model = self._model
        embedding, prompt = self._embedding, None
        if embedding is not None:  # the model's default prompt (or the named one), as embed
            prompt = embedding.options.with_request(OutputOptions(prompt_name=options.prompt_name))
        if isinstance(decoded[0], str):
            texts = list(decoded)
            skip = 0
            if embedding is not None:
                texts = list(embedding.with_prompt(texts, prompt))
                skip = embedding.prompt_length(prompt)
            model._log_request(texts)
            encodings = self._tokenized(texts, options, limit)
        else:
            if embedding is not None:
                embedding.check_token_input_prompt(prompt)
            model._log_request([f"<{len(ids)} token ids>" for ids in decoded])
            checked = self._checked_ids(decoded, limit, options.truncation_side or "right")
            encodings = model.encoder.encode_ids(checked)
            skip = 0
        if options.truncation_side == "left":  # a prompt cut off is no longer there to leave out
            skip = 0
        return model._forward_items(encodings, skip)

    def _tokenized(
        self, texts: list[str], options: PoolingOptions, limit: int | None
    ) -> list[Encoding]:
        encoder, special = self._model.encoder, options.add_special_tokens
        if limit is None:
            auto = self._model.config.auto_truncate
            encodings = encoder.tokenize(texts, truncate=auto, add_special_tokens=special)
            for index, encoding in enumerate(encodings):
                if len(encoding) > encoder.max_length:  # only without auto_truncate
                    raise too_long(index, len(encoding), encoder.max_length, PARAM)
            return encodings
        if options.truncation_side is None:  # the tokenizer's truncation keeps special tokens
            return encoder.tokenize(
                texts, truncate=True, add_special_tokens=special, max_length=limit
            )
        full = encoder.tokenize(texts, truncate=False, add_special_tokens=special)
        return [_cut(encoding, limit, options.truncation_side) for encoding in full]

    def _checked_ids(
        self, token_lists: list[list[int]], limit: int | None, side: str
    ) -> list[list[int]]:
        encoder = self._model.encoder
        vocab, longest = encoder.vocab_size, encoder.max_length
        checked = []
        for index, ids in enumerate(token_lists):
            bad = next((t for t in ids if not 0 <= t < vocab), None)
            if bad is not None:
                raise InvalidInput(
                    f"input {index}: {bad} is not a token id of this model (0..{vocab - 1})",
                    param=PARAM,
                )
            if limit is not None and len(ids) > limit:
                ids = ids[-limit:] if side == "left" else ids[:limit]
            elif len(ids) > longest:  # token ids are never cut unasked, as on /v1/embeddings
                if not self._model.config.auto_truncate:
                    raise too_long(index, len(ids), longest, PARAM)
                raise InvalidInput(
                    f"input {index} has {len(ids)} tokens; this model takes at most {longest} "
                    "(truncate_prompt_tokens cuts it)",
                    param=PARAM,
                )
            checked.append(ids)
        return checked

    def _result(
        self, encodings: list[Encoding], outputs: list[Any], options: PoolingOptions
    ) -> PooledResult:
        tokens = sum(len(e) for e in encodings)
        if self._embedding is not None:
            normalize = None if options.activation else False  # None: the model's setting
            result = self._embedding.embedding_result(
                encodings, outputs, options.dimensions, normalize
            )
            return PooledResult(result.embeddings, tokens)
        head = self._head
        assert head is not None  # see __init__
        rows = [head.scores(np.asarray(o), options.activation) for o in outputs]
        return PooledResult([r.tolist() for r in rows], tokens, [head.label(r) for r in rows])


def _cut(encoding: Encoding, limit: int, side: str) -> Encoding:
    """vLLM's explicit-side truncation: the ids themselves are sliced (special tokens too)."""
    if len(encoding) <= limit:
        return encoding
    part = slice(-limit, None) if side == "left" else slice(0, limit)
    types = encoding.token_type_ids
    return Encoding(
        input_ids=encoding.input_ids[part],
        token_type_ids=types[part] if types is not None else None,
    )
