"""Rules about a model's tokenizer that every backend applies alike.

Both backends load the checkpoint's transformers tokenizer, so the limits and templates that
come with it must be read one way: otherwise the same model would take different inputs on
each backend. No heavy imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hf_runtime.backends import Encoding, TokenStrings
from hf_runtime.backends import token_spans as token_spans  # re-exported for the backends
from hf_runtime.errors import ConfigError

# Tokenizers report a huge sentinel (int(1e30)) when they know no limit.
_NO_TOKENIZER_LIMIT = 1_000_000


def encoder_max_length(position_limit: int, tokenizer: Any, configured: int | None) -> int:
    """The longest text (special tokens included) an encoder model takes.

    The model's position limit, unless max_model_len is not configured and the tokenizer
    declares fewer usable tokens: RoBERTa has 514 positions but takes 512 tokens (KServe
    would crash past 512). A configured max_model_len is the user's choice and stays.
    """
    tokenizer_limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if configured is None and 0 < tokenizer_limit < min(position_limit, _NO_TOKENIZER_LIMIT):
        return tokenizer_limit
    return position_limit


def read_chat_template(path: str | None) -> str | None:
    """The `generation.chat_template` file's text (None when none is configured)."""
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"generation.chat_template: cannot read {path}: {exc}") from None


@contextmanager
def truncating_from(tokenizer: Any, side: str) -> Iterator[None]:
    """Calls inside cut over-long texts from `side` ("left" keeps the end of a text),
    transformers' `truncation_side`, which keeps the special tokens. Call under the backend's
    tokenizer lock: the side is the shared tokenizer's, set back on the way out."""
    if side not in ("left", "right"):
        raise ValueError(f"truncation side must be left or right, not {side!r}")
    before = getattr(tokenizer, "truncation_side", "right")
    if side == before:
        yield
        return
    tokenizer.truncation_side = side
    try:
        yield
    finally:
        tokenizer.truncation_side = before


def encodings_from_batch(batch: Any, texts: Sequence[str]) -> list[Encoding]:
    """A tokenizer's batch output (unpadded) as Encodings, with token types and character
    offsets when the tokenizer returned them (the text rides along with its offsets)."""
    type_ids = batch.get("token_type_ids")
    offsets = batch.get("offset_mapping")
    return [
        Encoding(
            input_ids=tuple(ids),
            token_type_ids=tuple(type_ids[i]) if type_ids is not None else None,
            offsets=tuple((int(s), int(e)) for s, e in offsets[i]) if offsets is not None else None,
            text=texts[i] if offsets is not None else None,
        )
        for i, ids in enumerate(batch["input_ids"])
    ]


def tokenize_pairs(
    tokenizer: Any,
    firsts: Sequence[str],
    seconds: Sequence[str],
    *,
    max_length: int,
    truncate: bool,
    add_special_tokens: bool,
    token_type_ids: bool | None = None,
    truncation_side: str = "right",
) -> list[Encoding]:
    """(query, document) pairs as single sequences, the way cross-encoders were trained.

    Truncation is `only_second`, so the query is kept whole and the document cut (what vLLM
    does). A pair whose query alone leaves no room falls back to `longest_first`
    (sentence-transformers' CrossEncoder default) instead of failing: a fast tokenizer
    refuses such a batch outright, a slow one returns it uncut. `token_type_ids` None returns
    them when the tokenizer's model takes them. Blocking; the caller holds the tokenizer.
    """

    def encode(a: Sequence[str], b: Sequence[str], truncation: str | bool) -> list[Encoding]:
        batch = tokenizer(
            list(a),
            list(b),
            max_length=max_length,  # even untruncated: stops a "too long" warning
            truncation=truncation,
            padding=False,
            add_special_tokens=add_special_tokens,
            return_token_type_ids=token_type_ids,
            return_attention_mask=False,
        )
        types = batch.get("token_type_ids")
        return [
            Encoding(tuple(ids), tuple(types[i]) if types is not None else None)
            for i, ids in enumerate(batch["input_ids"])
        ]

    if not truncate:
        return encode(firsts, seconds, False)
    with truncating_from(tokenizer, truncation_side):
        return _truncated_pairs(encode, firsts, seconds, max_length)


def _truncated_pairs(
    encode: Callable[[Sequence[str], Sequence[str], str | bool], list[Encoding]],
    firsts: Sequence[str],
    seconds: Sequence[str],
    max_length: int,
) -> list[Encoding]:
    try:
        encodings: list[Encoding | None] = list(encode(firsts, seconds, "only_second"))
    except Exception:  # tokenizers' truncation error is a bare Exception: retry pair by pair
        encodings = [None] * len(firsts)
    for index, encoding in enumerate(encodings):
        if encoding is not None and len(encoding) <= max_length:
            continue
        pair = [firsts[index]], [seconds[index]]
        try:
            encodings[index] = encode(*pair, "only_second")[0]
        except Exception:
            encodings[index] = None
        found = encodings[index]
        if found is None or len(found) > max_length:
            encodings[index] = encode(*pair, "longest_first")[0]
    return [encoding for encoding in encodings if encoding is not None]


def token_strings(tokenizer: Any, token_ids: Sequence[int]) -> TokenStrings:
    """A transformers tokenizer's strings for `token_ids` (see EncoderBackend.token_strings).
    Call under the backend's tokenizer lock."""
    ids = [int(t) for t in token_ids]
    special_ids = set(tokenizer.all_special_ids)
    backend = getattr(tokenizer, "_tokenizer", None)
    word_aware = bool(backend and getattr(backend.model, "continuing_subword_prefix", None))
    return TokenStrings(
        tokens=tuple(str(t) for t in tokenizer.convert_ids_to_tokens(ids)),
        special=tuple(t in special_ids for t in ids),
        unknown=tuple(t == tokenizer.unk_token_id for t in ids),
        word_aware=word_aware,
        join=tokenizer.convert_tokens_to_string,
    )
