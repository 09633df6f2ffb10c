"""`plain_greedy`: when an engine may take a row's token from one batched argmax."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hf_runtime.decoding.detokenize import TokenTextCache
from hf_runtime.decoding.sampling import SampledToken
from hf_runtime.decoding.sequence import SequenceState
from hf_runtime.types import GenerationRequest, SamplingParams
from tests.decoding.byte_tokenizer import EOS, ByteTokenizer

VOCAB = 302


def state(tokenizer: ByteTokenizer, grammar: Any = None, **params: Any) -> SequenceState:
    request = GenerationRequest("r", [ord("a")], SamplingParams(**params))
    extra = {"grammar": grammar} if grammar is not None else {}
    return SequenceState(
        request, max_tokens=20, tokenizer=tokenizer, token_texts=TokenTextCache(tokenizer),
        vocab_size=VOCAB, eos_token_ids={EOS}, **extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "plain"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0, "stop": ["x"], "max_tokens": 5}, True),  # stops read text only
        ({"temperature": 0, "min_tokens": 0}, True),
        ({"temperature": 1.0}, False),
        ({"temperature": 0, "logprobs": 0}, False),
        ({"temperature": 0, "logit_bias": {"5": 1.0}}, False),
        ({"temperature": 0, "presence_penalty": 0.5}, False),
        ({"temperature": 0, "frequency_penalty": 0.5}, False),
        ({"temperature": 0, "repetition_penalty": 1.2}, False),
    ],
)
def test_plain_greedy_only_when_nothing_touches_the_row(
    byte_tokenizer: ByteTokenizer, params: dict[str, Any], plain: bool
) -> None:
    assert state(byte_tokenizer, **params).plain_greedy is plain


def test_pending_min_tokens_is_not_plain_until_reached(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer, temperature=0, min_tokens=2)
    assert not seq.plain_greedy  # EOS must still be masked
    seq.append(SampledToken(ord("b")))
    assert not seq.plain_greedy
    seq.append(SampledToken(ord("c")))
    assert seq.plain_greedy
    # With ignore_eos and no stop tokens nothing is masked: plain from the start.
    assert state(byte_tokenizer, temperature=0, min_tokens=2, ignore_eos=True).plain_greedy


def test_a_grammar_is_never_plain(byte_tokenizer: ByteTokenizer) -> None:
    class FakeGrammar:
        def matcher(self) -> object:
            return object()

    try:
        seq = state(byte_tokenizer, grammar=FakeGrammar(), temperature=0)
    except TypeError:  # SequenceState without grammars: nothing to check
        pytest.skip("SequenceState takes no grammar")
    assert not seq.plain_greedy


def test_the_plain_token_is_what_step_picks(byte_tokenizer: ByteTokenizer) -> None:
    logits = torch.randn(VOCAB + 10, generator=torch.Generator().manual_seed(0))
    # The best in-vocabulary token is a byte the test tokenizer can decode (its ids 256+ are
    # mostly undefined); the row is wider than the vocabulary, as some models' heads are.
    logits[65] = 50.0
    logits[VOCAB + 3] = 100.0  # outside the vocabulary: never chosen
    seq = state(byte_tokenizer, temperature=0)
    assert seq.plain_greedy
    assert seq.step(logits).token_id == int(logits[:VOCAB].argmax())
