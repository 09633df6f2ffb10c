"""Encoder tasks on vLLM's pooling runner, behind the same `EncoderBackend` as huggingface.

The task processors (`hf_runtime.tasks`) and the served encoder model stay the same; only the
forward pass runs in vLLM. To give the same numbers as the huggingface backend, we ask vLLM for
the model's raw outputs and apply KServe's semantics ourselves:
  - text_embedding: per-token hidden states (`token_embed`, no activation), pooled here with
    the modes the processor reads from the checkpoint and the huggingface backend's formulas
    (`hf_runtime.backends.pooling`; vLLM's own pooler would use its defaults, e.g. CLS for a
    bare BertModel where KServe mean-pools), prompt tokens left out as the checkpoint says,
    then the checkpoint's sentence-transformers modules after Pooling (Dense, LayerNorm,
    Normalize; `hf_runtime.backends.sentence_head`), in the inference thread;
  - sequence_classification: the head's logits (`classify`, no activation); the processor does
    argmax / softmax / raw logits;
  - rerank: the same `classify` logit for each (query, document) pair, tokenised here like on
    the huggingface backend; the pair's token types reach the model as vLLM's own score
    route passes them (`compressed_token_type_ids`: where the document starts).
Token classification and fill-mask are not offered: KServe labels every padded position of a
request and returns masked-LM logits, neither of which vLLM's pooling runner computes; nor are
sparse (SPLADE) embeddings (see `hf_runtime.backends.vllm.tasks`).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from vllm.pooling_params import PoolingParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError

from hf_runtime.backends import ForwardItem, ForwardSpec
from hf_runtime.backends.pooling import pool_token_states
from hf_runtime.backends.sentence_head import SentenceHead
from hf_runtime.backends.tokenizer_side import TokenizerSide
from hf_runtime.backends.vllm.async_llm import (
    engine_failure,
    render_token_prompt,
    shutdown_engine,
)
from hf_runtime.backends.vllm.tasks import POOLING_TASKS, unsupported_reason
from hf_runtime.errors import ConfigError, ModelLoadFailed
from hf_runtime.tasks.registry import Task


class VLLMEncoderBackend(TokenizerSide):
    """An `hf_runtime.backends.EncoderBackend` whose forward pass runs on a vLLM engine.

    `forward` blocks (it is called from the batcher's inference thread): it submits every item
    to the engine on the event loop the model was loaded on, where vLLM batches them, and
    waits for the results. Tokenizing is `TokenizerSide`'s, with the same transformers tokenizer
    and settings as the huggingface backend, so both backends see identical token ids.
    """

    def __init__(
        self,
        engine: AsyncLLM,
        tokenizer: Any,
        loop: asyncio.AbstractEventLoop,
        *,
        task: Task,
        max_length: int,
        add_special_tokens: bool,
        name: str = "",
        checkpoint_view: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        """`checkpoint_view`: the folder the engine loaded the model from, when the loader
        made one (see loader.checkpoint_without_st_dense); removed on close."""
        if task.spec.head not in POOLING_TASKS:
            reason = unsupported_reason(task) or "it is not a pooling task"
            raise ConfigError(
                f"task {task.value} is not available on the vllm backend: {reason}; use "
                "backend: huggingface"
            )
        self.engine = engine
        self.task = task
        self.name = name  # the served model's, for errors
        self._pooling_task = POOLING_TASKS[task.spec.head]
        self._tokenizer = tokenizer
        self._lock = threading.Lock()  # a fast tokenizer must not be used by two threads
        self._loop = loop
        self._max_length = max_length
        self._add_special_tokens = add_special_tokens
        # The engine takes no token types (a pair's come as where the document starts); a
        # task that reads token offsets keeps them whenever the tokenizer can give them.
        self._return_token_type_ids = False
        self._return_offsets = task.spec.token_offsets and bool(
            getattr(tokenizer, "is_fast", False)
        )
        self._ids = itertools.count()
        self._heads: dict[ForwardSpec, SentenceHead] = {}
        self._checkpoint_view = checkpoint_view
        model_config = engine.model_config
        self._hidden_size = int(model_config.get_hidden_size())
        self._vocab_size = int(model_config.get_vocab_size())
        self._num_labels = int(getattr(model_config.hf_config, "num_labels", 0) or 0)

    @property
    def padding_side(self) -> str:
        return "right"  # vLLM never pads: any padding length is the same

    @property
    def ready(self) -> bool:
        return not self.engine.errored

    @property
    def failure(self) -> str | None:
        return engine_failure(self.engine)

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def num_labels(self) -> int:
        return self._num_labels

    @property
    def mask_token(self) -> str | None:
        return None

    @property
    def mask_token_id(self) -> int | None:
        return None

    def prepare(self, spec: ForwardSpec) -> None:
        if spec.layer_weighting is not None:
            raise ConfigError(
                "the checkpoint's WeightedLayerPooling needs every layer's hidden states, "
                "which vLLM's pooling runner does not return; use backend: huggingface"
            )
        self._head(spec)

    def _head(self, spec: ForwardSpec) -> SentenceHead:
        """The spec's sentence modules, built once (at load, through `prepare`); they run on
        the CPU, where the engine's per-token states arrive."""
        head = self._heads.get(spec)
        if head is None:
            head = self._heads[spec] = SentenceHead(spec.sentence_modules, torch.device("cpu"))
        return head

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[np.ndarray]:
        future = asyncio.run_coroutine_threadsafe(self._forward(items), self._loop)
        outputs = future.result()
        if not spec.pooling:
            return [np.asarray(values.numpy(), np.float32).reshape(-1) for values in outputs]
        # Pooling and the sentence modules run here, in the calling (inference) thread.
        with torch.inference_mode():
            pooled = torch.stack(
                [
                    pool_token_states(values, spec.pooling, item.prompt_length)
                    for values, item in zip(outputs, items, strict=True)
                ]
            )
            if spec.sentence_modules:
                pooled = self._head(spec)(pooled)
        vectors = list(pooled.float().numpy())
        for row, (values, item) in enumerate(zip(outputs, items, strict=True)):
            if item.token_states:  # TEI's /embed_all: the per-token states, unpooled
                vectors[row] = np.asarray(values.numpy(), np.float32)
        return vectors

    async def _forward(self, items: Sequence[ForwardItem]) -> list[torch.Tensor]:
        return list(await asyncio.gather(*(self._one(item) for item in items)))

    async def _one(self, item: ForwardItem) -> torch.Tensor:
        params = PoolingParams(task=self._pooling_task, use_activation=False)
        types = item.encoding.token_type_ids
        if types and any(types):
            # vLLM's model runner rebuilds token_type_ids from where the second segment starts.
            params.extra_kwargs = {"compressed_token_type_ids": second_segment_start(types)}
        prompt = await render_token_prompt(self.engine, item.encoding.input_ids)
        request_id = f"pool-{next(self._ids)}"
        data: Any = None
        try:
            async for output in self.engine.encode(prompt, params, request_id):
                data = output.outputs.data
        except EngineDeadError:  # 503 saying how it died (logged once by the runtime)
            raise ModelLoadFailed(self.name, self.failure or "Its vLLM engine died") from None
        return torch.as_tensor(data).float()  # [tokens, hidden] states, or the head's logits

    async def aclose(self) -> None:
        await shutdown_engine(self.engine)
        if self._checkpoint_view is not None:
            await asyncio.to_thread(self._checkpoint_view.cleanup)


def second_segment_start(token_type_ids: Sequence[int]) -> int:
    """Where the second segment (type 1) of a pair starts: vLLM's compressed form, which can
    only say "zeros, then ones"; anything else is a tokenizer this backend cannot run."""
    start = list(token_type_ids).index(1)
    if any(t != 0 for t in token_type_ids[:start]) or any(t != 1 for t in token_type_ids[start:]):
        raise ValueError(f"token_type_ids are not zeros then ones: {list(token_type_ids)}")
    return start
