"""Incremental detokenization: token-granular text deltas from a growing list of token ids.

Decoding each token alone is wrong in two ways: byte-level BPE splits one character over
several tokens (a lone piece decodes to U+FFFD), and SentencePiece-style decoders drop the
leading space of the first token they see. So each step decodes a short window ending at the
new token, compares it with the same window without the new token, and releases the
difference only once it no longer ends in a partial character (vLLM's offsets algorithm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

REPLACEMENT_CHAR = "\ufffd"
# Prompt tokens kept as left context so the first generated token decodes with its spacing.
CONTEXT_TOKENS = 5


class Decoder(Protocol):
    """The part of a transformers tokenizer this module uses."""

    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str: ...


class IncrementalDetokenizer:
    """Per-sequence; fed from one thread. Special tokens are skipped, spaces are not cleaned up
    (so the concatenated deltas equal `decode(all_ids, skip_special_tokens=True,
    clean_up_tokenization_spaces=False)` for the generated ids)."""

    def __init__(self, tokenizer: Decoder, context_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = list(context_ids[-CONTEXT_TOKENS:]) if context_ids else []
        self._prefix_offset = 0  # start of the window that is decoded
        self._read_offset = len(self._ids)  # end of the text already released

    def add(self, token_id: int) -> str:
        """Append one generated token; return the text it completes ("" if still partial)."""
        self._ids.append(token_id)
        return self._release(final=False)

    def flush(self) -> str:
        """Release whatever is pending at the end of the sequence, partial characters included."""
        return self._release(final=True)

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def _release(self, *, final: bool) -> str:
        if self._read_offset >= len(self._ids):
            return ""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        if len(full_text) <= len(prefix_text):
            # Nothing visible yet (special tokens, or bytes that do not form a character).
            if final:
                self._advance()
            return ""
        if full_text.endswith(REPLACEMENT_CHAR) and not final:
            return ""  # wait for the rest of the character's bytes
        self._advance()
        return full_text[len(prefix_text) :]

    def _advance(self) -> None:
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        # Only the decode window is needed: drop what lies before it.
        if self._prefix_offset > 64:
            del self._ids[: self._prefix_offset]
            self._read_offset -= self._prefix_offset
            self._prefix_offset = 0


class TokenTextCache:
    """Text of single tokens (for logprobs), memoised; confined to the engine thread."""

    def __init__(self, tokenizer: Decoder, max_entries: int = 65536) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[int, str] = {}
        self._max_entries = max_entries

    def text(self, token_id: int) -> str:
        cached = self._texts.get(token_id)
        if cached is None:
            cached = self._tokenizer.decode([token_id], skip_special_tokens=False)
            if len(self._texts) >= self._max_entries:
                self._texts.clear()
            self._texts[token_id] = cached
        return cached
