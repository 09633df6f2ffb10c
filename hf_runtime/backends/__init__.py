"""Backends run models; this module holds the backend-neutral values they exchange.

Task processors (`hf_runtime.tasks`) and the batcher see an encoder backend only through the
`EncoderBackend` protocol and the plain values below: never torch or transformers. Concrete
backends live in subpackages (`huggingface`, `vllm`) that are imported only when a model of
that kind loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Encoding:
    """One tokenized text, unpadded. `offsets` are character spans (fast tokenizers only)."""

    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None
    offsets: tuple[tuple[int, int], ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class ForwardItem:
    """One text to run through the encoder, and which part of its output is wanted.

    `min_length`: pad the text to at least this many positions, and return token-level outputs
    for all of them. KServe pads every text of a request to the request's longest and returns
    labels for the pad positions too; a pad position's output only depends on the real tokens
    it attends to, so extra padding from other requests in the same batch changes nothing.
    `positions`: return token-level outputs only at these (unpadded) positions (fill-mask).
    """

    encoding: Encoding
    min_length: int = 0
    positions: tuple[int, ...] | None = None

    @property
    def padded_length(self) -> int:
        return max(len(self.encoding), self.min_length)


@dataclass(frozen=True)
class ForwardSpec:
    """What a model's forward pass must return, fixed per served model.

    `pooling` empty: the head's logits (sequence-level rows, or token-level rows for the
    positions a ForwardItem asks for). Non-empty: the last hidden states pooled per text with
    these modes, concatenated in order (sentence-transformers' convention).
    """

    pooling: tuple[str, ...] = ()


class EncoderBackend(Protocol):
    """A loaded encoder model plus its tokenizer. Every method blocks: call it off the loop."""

    @property
    def max_length(self) -> int:
        """Texts are truncated to this many tokens (special tokens included)."""

    @property
    def hidden_size(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def num_labels(self) -> int: ...

    @property
    def mask_token(self) -> str | None: ...

    @property
    def mask_token_id(self) -> int | None: ...

    def tokenize(self, texts: Sequence[str], *, truncate: bool = True) -> list[Encoding]:
        """Tokenize with the configured special-token and case settings; `truncate` cuts each
        text to the model's max length (false: full length, for `auto_truncate: false`)."""

    def encode_ids(self, token_ids: Sequence[Sequence[int]]) -> list[Encoding]:
        """Wrap caller-provided token ids as encodings (no special tokens are added)."""

    def decode(self, token_ids: Sequence[int]) -> str: ...

    def forward(self, items: Sequence[ForwardItem], spec: ForwardSpec) -> list[Any]:
        """Run one padded batch; one float32 numpy array per item, in order."""

    def close(self) -> None: ...
