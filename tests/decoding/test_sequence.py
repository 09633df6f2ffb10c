from __future__ import annotations

import torch

from hf_runtime.decoding.detokenize import TokenTextCache
from hf_runtime.decoding.sampling import SampledToken
from hf_runtime.decoding.sequence import SequenceState
from hf_runtime.types import GenerationDelta, GenerationRequest, SamplingParams
from tests.decoding.byte_tokenizer import EOS, STOP_TOKEN, ByteTokenizer

VOCAB = 302


def state(tokenizer: ByteTokenizer, max_tokens: int = 50, **params: object) -> SequenceState:
    request = GenerationRequest("r", [ord("a"), ord("b")], SamplingParams(**params))  # type: ignore[arg-type]
    return SequenceState(
        request,
        max_tokens=max_tokens,
        tokenizer=tokenizer,
        token_texts=TokenTextCache(tokenizer),
        vocab_size=VOCAB,
        eos_token_ids={EOS},
    )


def feed(seq: SequenceState, ids: list[int]) -> list[GenerationDelta]:
    deltas = []
    for token_id in ids:
        deltas.append(seq.append(SampledToken(token_id)).delta)
        if seq.finished:
            break
    return deltas


def text(deltas: list[GenerationDelta]) -> str:
    return "".join(d.text for d in deltas)


def test_eos_finishes_with_stop_and_its_text_is_not_streamed(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer)
    deltas = feed(seq, [256, EOS, 257])
    assert text(deltas) == "Hello"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].stop_reason is None
    assert [t for d in deltas for t in d.token_ids] == [256, EOS]  # EOS is counted


def test_prompt_tokens_only_on_the_first_delta(byte_tokenizer: ByteTokenizer) -> None:
    deltas = feed(state(byte_tokenizer), [256, 257, EOS])
    assert [d.prompt_tokens for d in deltas] == [2, 0, 0]


def test_length_finish_releases_pending_text(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer, max_tokens=3, stop=["Hex"])
    deltas = feed(seq, [256, ord(" "), ord("H")])  # "H" may start "Hex": held, then released
    assert [d.finish_reason for d in deltas] == [None, None, "length"]
    assert text(deltas) == "Hello H"


def test_stop_string_is_cut_with_what_follows(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer, stop=["lo w"])
    deltas = feed(seq, [256, 257, ord("!")])
    assert text(deltas) == "Hel"
    assert deltas[-1].finish_reason == "stop" and deltas[-1].stop_reason == "lo w"
    assert len(deltas) == 2


def test_stop_string_completed_by_the_last_allowed_token_wins_over_length(
    byte_tokenizer: ByteTokenizer,
) -> None:
    seq = state(byte_tokenizer, max_tokens=2, stop=["o w"])
    deltas = feed(seq, [256, 257])
    assert deltas[-1].finish_reason == "stop" and text(deltas) == "Hell"


def test_stop_token_id_finishes_with_its_id(byte_tokenizer: ByteTokenizer) -> None:
    deltas = feed(state(byte_tokenizer, stop_token_ids=[STOP_TOKEN]), [256, STOP_TOKEN])
    assert deltas[-1].finish_reason == "stop" and deltas[-1].stop_reason == STOP_TOKEN
    assert text(deltas) == "Hello"


def test_eos_releases_text_held_for_a_stop_string(byte_tokenizer: ByteTokenizer) -> None:
    deltas = feed(state(byte_tokenizer, stop=["Hello!"]), [256, EOS])
    assert [d.text for d in deltas] == ["", "Hello"]


def test_ignore_eos_keeps_going(byte_tokenizer: ByteTokenizer) -> None:
    deltas = feed(state(byte_tokenizer, max_tokens=3, ignore_eos=True), [256, EOS, 257])
    assert [d.finish_reason for d in deltas] == [None, None, "length"]
    assert text(deltas) == "Hello world"


def test_no_stop_before_min_tokens(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer, min_tokens=3, stop=["Hello"], stop_token_ids=[STOP_TOKEN])
    deltas = feed(seq, [256, STOP_TOKEN, 257, EOS])
    assert [d.finish_reason for d in deltas] == [None, None, None, "stop"]
    assert text(deltas) == "Hello world"  # the stop string came too early to count


def test_min_tokens_counts_the_ending_token(byte_tokenizer: ByteTokenizer) -> None:
    # As vLLM: the check runs after appending, so the min_tokens-th token may end it (the
    # sampler keeps EOS away before then, so in practice it is a stop string or length).
    deltas = feed(state(byte_tokenizer, min_tokens=2), [256, EOS])
    assert deltas[-1].finish_reason == "stop"


def test_partial_characters_are_streamed_as_empty_text(byte_tokenizer: ByteTokenizer) -> None:
    first, second = "é".encode()
    deltas = feed(state(byte_tokenizer), [first, second])
    assert [d.text for d in deltas] == ["", "é"]
    assert [d.token_ids for d in deltas] == [[first], [second]]


def test_step_samples_and_reports_logprobs(byte_tokenizer: ByteTokenizer) -> None:
    seq = state(byte_tokenizer, temperature=0, logprobs=2)
    logits = torch.zeros(VOCAB)
    logits[256], logits[257] = 5.0, 4.0
    result = seq.step(logits)
    assert result.token_id == 256 and result.delta.text == "Hello"
    (entry,) = result.delta.logprobs or []
    assert entry.token == "Hello" and [t[1] for t in entry.top] == ["Hello", " world"]
    assert entry.logprob == float(torch.log_softmax(logits, -1)[256])
