from __future__ import annotations

import math

import pytest
import torch

from hf_runtime.decoding.sampling import LogitsSampler, validate_sampling_params
from hf_runtime.errors import InvalidInput
from hf_runtime.types import SamplingParams

VOCAB = 8
EOS = 7


def sampler(prompt: list[int] | None = None, **kwargs: object) -> LogitsSampler:
    return LogitsSampler(
        SamplingParams(**kwargs),  # type: ignore[arg-type]
        prompt_token_ids=prompt or [],
        vocab_size=VOCAB,
        eos_token_ids={EOS},
    )


def logits(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


BASE = logits(1.0, 2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.5)


def test_temperature_zero_is_argmax_of_processed_logits() -> None:
    assert sampler(temperature=0).select(BASE).token_id == 4
    biased = sampler(temperature=0, logit_bias={2: 10.0})
    assert biased.select(BASE).token_id == 2


def test_logit_bias_adds_to_the_token_logit() -> None:
    processed = sampler(logit_bias={0: 1.5, 5: -100.0}).process(BASE)
    expected = BASE.clone()
    expected[0] += 1.5
    expected[5] -= 100.0
    assert torch.equal(processed, expected)


def test_presence_and_frequency_penalties_are_additive_on_output_tokens() -> None:
    s = sampler(prompt=[1], presence_penalty=0.5, frequency_penalty=0.25)
    for token in (3, 3, 6):
        s.observe(token)
    processed = s.process(BASE)
    expected = BASE.clone()
    expected[3] -= 0.5 + 2 * 0.25
    expected[6] -= 0.5 + 1 * 0.25
    assert torch.allclose(processed, expected)
    assert processed[1] == BASE[1]  # prompt tokens are not penalised by these two


def test_negative_presence_penalty_encourages_repeats() -> None:
    s = sampler(presence_penalty=-1.0)
    s.observe(2)
    assert s.process(BASE)[2] == BASE[2] + 1.0


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() -> None:
    s = sampler(prompt=[0, 2], repetition_penalty=2.0)
    s.observe(6)
    processed = s.process(BASE)
    assert processed[0] == pytest.approx(0.5)  # positive, in prompt: divided
    assert processed[2] == pytest.approx(-2.0)  # negative, in prompt: multiplied
    assert processed[6] == pytest.approx(0.0)  # zero stays zero
    assert processed[4] == BASE[4]  # never seen


def test_min_tokens_blocks_eos_and_stop_tokens_until_reached() -> None:
    s = sampler(min_tokens=2, stop_token_ids=[1])
    assert math.isinf(s.process(BASE)[EOS]) and math.isinf(s.process(BASE)[1])
    s.observe(0)
    assert math.isinf(s.process(BASE)[EOS])
    s.observe(0)
    assert torch.equal(s.process(BASE), BASE)


def test_min_tokens_with_ignore_eos_leaves_eos_alone() -> None:
    s = sampler(min_tokens=3, ignore_eos=True)
    assert s.process(BASE)[EOS] == BASE[EOS]


def test_top_k_keeps_the_k_best() -> None:
    warped = sampler(temperature=1.0, top_k=2).warp(BASE)
    assert torch.isfinite(warped).nonzero().flatten().tolist() == [1, 4]


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.softmax(BASE, dim=-1)
    best = float(probs.max())
    only_best = sampler(top_p=best * 0.99).warp(BASE)
    assert torch.isfinite(only_best).nonzero().flatten().tolist() == [4]
    two = sampler(top_p=best + 1e-3).warp(BASE)
    assert torch.isfinite(two).sum() == 2


def test_min_p_drops_tokens_below_a_fraction_of_the_best() -> None:
    probs = torch.softmax(BASE, dim=-1)
    warped = sampler(min_p=0.3).warp(BASE)
    kept = torch.isfinite(warped)
    assert torch.equal(kept, probs >= 0.3 * probs.max())


def test_temperature_scales_logits() -> None:
    assert torch.allclose(sampler(temperature=0.5).warp(BASE), BASE / 0.5)


def draws(seed: int | None, n: int = 32) -> list[int]:
    s = sampler(seed=seed, temperature=1.0)
    flat = torch.zeros(VOCAB)
    return [s.select(flat).token_id for _ in range(n)]


def test_same_seed_same_draws_and_different_seeds_differ() -> None:
    assert draws(1234) == draws(1234)
    assert draws(1234) != draws(4321)


def test_seeding_never_touches_the_global_generator() -> None:
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    draws(7)
    draws(None)
    assert torch.equal(torch.rand(3), expected)


def test_unseeded_requests_draw_differently() -> None:
    assert draws(None, 64) != draws(None, 64)


def test_sampling_respects_the_filters() -> None:
    s = sampler(seed=0, temperature=1.0, top_k=2)
    assert {s.select(BASE).token_id for _ in range(50)} <= {1, 4}


def test_logprobs_are_raw_log_softmax_with_top_alternatives() -> None:
    s = sampler(temperature=0, logprobs=3, logit_bias={2: 50.0})
    chosen = s.select(BASE)
    raw = torch.log_softmax(BASE, dim=-1)
    assert chosen.token_id == 2
    assert chosen.logprob == pytest.approx(float(raw[2]))
    assert [t for t, _ in chosen.top] == [4, 1, 7]
    assert chosen.top[0][1] == pytest.approx(float(raw[4]))


def test_no_logprobs_unless_asked() -> None:
    chosen = sampler(temperature=0).select(BASE)
    assert chosen.logprob is None and chosen.top == []


def test_logprobs_zero_gives_only_the_chosen_token() -> None:
    chosen = sampler(temperature=0, logprobs=0).select(BASE)
    assert chosen.logprob is not None and chosen.top == []


def test_wider_logits_rows_are_cut_to_the_vocabulary() -> None:
    padded = torch.cat([BASE, torch.tensor([100.0])])
    assert sampler(temperature=0).select(padded).token_id == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -2),
        ("min_p", 1.5),
        ("presence_penalty", 2.5),
        ("frequency_penalty", float("nan")),
        ("repetition_penalty", 0.0),
        ("max_tokens", 0),
        ("min_tokens", -1),
        ("logprobs", 21),
        ("logit_bias", {VOCAB: 1.0}),
        ("logit_bias", {0: float("inf")}),
        ("stop_token_ids", [-1]),
    ],
)
def test_invalid_parameters_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_sampling_params(SamplingParams(**{field: value}), VOCAB)  # type: ignore[arg-type]
    assert info.value.param == field


def test_min_tokens_above_max_tokens_is_rejected() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_sampling_params(SamplingParams(max_tokens=2, min_tokens=3), VOCAB)
    assert info.value.param == "min_tokens"


def test_defaults_are_valid() -> None:
    validate_sampling_params(SamplingParams(), VOCAB)
    validate_sampling_params(SamplingParams(top_k=-1, seed=-5), VOCAB)
