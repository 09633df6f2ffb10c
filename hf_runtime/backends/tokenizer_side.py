"""The tokenizer side of an `EncoderBackend` over one transformers tokenizer, for every backend.

The huggingface, onnxruntime and vllm encoder backends all tokenize with the checkpoint's
transformers tokenizer and the same settings, so they share these methods and see identical
token ids. No heavy imports.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from hf_runtime.backends import Encoding, TokenStrings
from hf_runtime.backends.tokenizer_rules import (
    encodings_from_batch,
    token_spans,
    token_strings,
    tokenize_pairs,
    truncating_from,
)
from hf_runtime.types import TokenSpan


class TokenizerSide:
    """`EncoderBackend`'s tokenizer methods over `_tokenizer`, shared by request threads and the
    inference thread: `_lock` serialises its use because a fast tokenizer raises "Already
    borrowed" when its settings change while another thread encodes.

    The backend sets, before tokenizing: `_tokenizer`, `_lock`, `_max_length`,
    `_add_special_tokens`, `_return_token_type_ids` (the encodings carry token types) and
    `_return_offsets` (they carry each token's offsets and text).
    """

    _tokenizer: Any
    _lock: threading.Lock
    _max_length: int
    _add_special_tokens: bool
    _return_token_type_ids: bool
    _return_offsets: bool

    @property
    def max_length(self) -> int:
        return self._max_length

    def tokenize(
        self,
        texts: Sequence[str],
        *,
        truncate: bool = True,
        add_special_tokens: bool | None = None,
        truncation_side: str = "right",
        max_length: int | None = None,
    ) -> list[Encoding]:
        """`truncate=False` keeps every token (auto_truncate: false refuses long texts)."""
        if add_special_tokens is None:
            add_special_tokens = self._add_special_tokens
        with self._lock, truncating_from(self._tokenizer, truncation_side):
            batch = self._tokenizer(
                list(texts),
                # Even untruncated: stops a "too long" warning.
                max_length=max_length or self._max_length,
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

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        with self._lock:
            return str(
                self._tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
            )

    def token_spans(self, text: str, add_special_tokens: bool) -> list[TokenSpan]:
        with self._lock:
            return token_spans(self._tokenizer, text, add_special_tokens)

    def token_strings(self, token_ids: Sequence[int]) -> TokenStrings:
        with self._lock:
            return token_strings(self._tokenizer, token_ids)
