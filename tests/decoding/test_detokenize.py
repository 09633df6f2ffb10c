from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from hf_runtime.decoding.detokenize import (
    REPLACEMENT_CHAR,
    IncrementalDetokenizer,
    TokenTextCache,
)
from tests.decoding.byte_tokenizer import EOS, ByteTokenizer


def stream(detokenizer: IncrementalDetokenizer, ids: list[int]) -> list[str]:
    return [detokenizer.add(token_id) for token_id in ids] + [detokenizer.flush()]


def test_a_character_split_over_tokens_is_released_whole(byte_tokenizer: ByteTokenizer) -> None:
    ids = byte_tokenizer.encode("aé🙂b")  # é is 2 bytes, 🙂 is 4
    deltas = stream(IncrementalDetokenizer(byte_tokenizer), ids)
    assert deltas == ["a", "", "é", "", "", "", "🙂", "b", ""]
    assert not any(REPLACEMENT_CHAR in d for d in deltas)


def test_special_tokens_are_skipped(byte_tokenizer: ByteTokenizer) -> None:
    deltas = stream(IncrementalDetokenizer(byte_tokenizer), [256, EOS, 257])
    assert "".join(deltas) == "Hello world"


def test_flush_releases_an_unfinished_character(byte_tokenizer: ByteTokenizer) -> None:
    detokenizer = IncrementalDetokenizer(byte_tokenizer)
    assert detokenizer.add(ord("x")) == "x"
    assert detokenizer.add("é".encode()[0]) == ""
    assert detokenizer.flush() == REPLACEMENT_CHAR
    assert detokenizer.flush() == ""


def test_context_tokens_are_not_emitted(byte_tokenizer: ByteTokenizer) -> None:
    detokenizer = IncrementalDetokenizer(byte_tokenizer, context_ids=byte_tokenizer.encode("é"))
    assert stream(detokenizer, [256]) == ["Hello", ""]


def test_long_streams_keep_a_short_window(byte_tokenizer: ByteTokenizer) -> None:
    text = "abcdefghij" * 50
    detokenizer = IncrementalDetokenizer(byte_tokenizer)
    assert "".join(stream(detokenizer, byte_tokenizer.encode(text))) == text
    assert len(detokenizer._ids) < 100  # window trimmed, not the whole history


@pytest.mark.parametrize("text", ["café 東京 🙂 naïve", "Hello world, how are you today?"])
def test_byte_level_bpe_deltas_concatenate_to_the_full_decode(
    tiny_models: dict[str, Path], text: str
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2-chat"])
    prompt = tokenizer.encode("The capital of France is", add_special_tokens=False)
    ids = tokenizer.encode(text, add_special_tokens=False)
    deltas = stream(IncrementalDetokenizer(tokenizer, context_ids=prompt), ids)
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any(REPLACEMENT_CHAR in d for d in deltas)


def test_metaspace_first_token_spacing_follows_the_context(tiny_models: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["t5"])
    ids = tokenizer.encode("wir setzen Worte", add_special_tokens=False)
    alone = "".join(stream(IncrementalDetokenizer(tokenizer), ids))
    assert alone == tokenizer.decode(ids, skip_special_tokens=True) == "wir setzen Worte"
    # After a prompt, the first token's leading space is part of the continuation.
    prompt = tokenizer.encode("Paris", add_special_tokens=False)
    continued = "".join(stream(IncrementalDetokenizer(tokenizer, context_ids=prompt), ids))
    assert continued == " wir setzen Worte"


def test_token_text_cache_decodes_single_tokens(byte_tokenizer: ByteTokenizer) -> None:
    cache = TokenTextCache(byte_tokenizer, max_entries=2)
    assert cache.text(256) == "Hello"
    assert cache.text(EOS) == "</s>"  # specials keep their text here
    assert cache.text(257) == " world"  # evicts, still correct
    assert cache.text(256) == "Hello"
