"""POST /completions (non-streaming) against the scripted engine."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from hf_runtime.protocols.openai.request_params import choice_seed
from tests.protocols.openai.fakes import (
    BOS_ID,
    REPLY_LENGTH,
    ScriptedGenerator,
    reply_words,
    token_logprob,
    word_id,
)
from tests.protocols.openai.helpers import assert_error

pytestmark = pytest.mark.anyio

GREEDY = "".join(reply_words())  # " alpha beta gamma delta epsilon zeta"


async def complete(client: httpx.AsyncClient, **fields: object) -> dict:
    response = await client.post("/v1/completions", json={"model": "gpt", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def test_completion_body_shape_and_usage(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0)
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", body["id"])
    assert body["object"] == "text_completion"
    assert isinstance(body["created"], int) and body["created"] > 1_600_000_000
    assert body["model"] == "gpt"
    assert body["system_fingerprint"] is None
    assert body["choices"] == [
        {"index": 0, "text": GREEDY, "logprobs": None, "finish_reason": "stop", "stop_reason": None}
    ]
    # BOS + 2 characters; the reply's words plus EOS.
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": REPLY_LENGTH + 1,
        "total_tokens": 3 + REPLY_LENGTH + 1,
    }


async def test_max_tokens_gives_length(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, max_tokens=2)
    assert body["choices"][0]["text"] == " alpha beta"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_max_tokens_default_is_the_rest_of_the_context(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    await complete(client, prompt="Hi")
    assert generator.requests[0].params.max_tokens is None  # the engine decides, not "16"
    await complete(client, prompt="Hi", max_tokens=None)
    assert generator.requests[1].params.max_tokens is None


async def test_prompt_longer_than_context_is_the_engines_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", json={"model": "gpt", "prompt": "Hi", "max_tokens": 600}
    )
    assert_error(response, 400, "max_tokens", "maximum context length is 512")


async def test_stop_string_is_removed_and_reported(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, stop=[" gam", "zzz"])
    choice = body["choices"][0]
    assert choice["text"] == " alpha beta"
    assert choice["finish_reason"] == "stop"
    assert choice["stop_reason"] == " gam"
    body = await complete(client, prompt="Hi", temperature=0, stop="ta")
    assert body["choices"][0]["text"] == " alpha be"


@pytest.mark.parametrize(
    ("prompt", "expected_ids"),
    [
        ("ab", [[BOS_ID, 97, 98]]),
        (["ab", "c"], [[BOS_ID, 97, 98], [BOS_ID, 99]]),
        ([5, 6, 7], [[5, 6, 7]]),
        ([[5, 6], [7]], [[5, 6], [7]]),
    ],
)
async def test_prompt_forms(
    client: httpx.AsyncClient,
    generator: ScriptedGenerator,
    prompt: object,
    expected_ids: list[list[int]],
) -> None:
    body = await complete(client, prompt=prompt, temperature=0)
    assert sorted(r.prompt_token_ids for r in generator.requests) == sorted(expected_ids)
    assert [c["index"] for c in body["choices"]] == list(range(len(expected_ids)))
    assert body["usage"]["prompt_tokens"] == sum(len(ids) for ids in expected_ids)


async def test_batch_with_n_is_prompt_major_and_seeds_are_per_choice(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    body = await complete(client, prompt=["a", "bb"], n=2, seed=7, temperature=1.0)
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    by_id = {r.request_id: r for r in generator.requests}
    for choice in choices:
        request = by_id[f"{body['id']}-{choice['index']}"]
        prompt_index, j = divmod(choice["index"], 2)
        assert request.prompt_token_ids == [[BOS_ID, 97], [BOS_ID, 98, 98]][prompt_index]
        assert request.params.seed == choice_seed(7, j)
        assert choice["text"] == "".join(reply_words(choice_seed(7, j), 1.0))
    assert choices[0]["text"] != choices[1]["text"]  # distinct seeds, distinct samples
    assert choices[0]["text"] == choices[2]["text"]  # same seed for choice 0 of each prompt
    # Prompt tokens once per prompt (2 + 3), completion tokens summed over the 4 choices.
    assert body["usage"]["prompt_tokens"] == 5
    assert body["usage"]["completion_tokens"] == 4 * (REPLY_LENGTH + 1)


async def test_same_seed_is_reproducible(client: httpx.AsyncClient) -> None:
    first = await complete(client, prompt="x", seed=123, temperature=0.8, n=3)
    second = await complete(client, prompt="x", seed=123, temperature=0.8, n=3)
    assert [c["text"] for c in first["choices"]] == [c["text"] for c in second["choices"]]


def test_choice_seeds_are_distinct_and_deterministic() -> None:
    seeds = [choice_seed(42, j) for j in range(16)]
    assert seeds[0] == 42
    assert len(set(seeds)) == 16
    assert seeds == [choice_seed(42, j) for j in range(16)]
    assert choice_seed(None, 3) is None
    assert all(0 <= s < 2**63 for s in seeds[1:])


async def test_sampling_fields_reach_the_engine(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    await complete(
        client,
        prompt="x",
        temperature=0.5,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logit_bias={"5": 10, "7": -100},
        stop="zz",
        seed=3,
        user="someone",
        top_k=40,
        min_p=0.1,
        repetition_penalty=1.2,
        stop_token_ids=[9],
        ignore_eos=False,
        min_tokens=1,
        max_tokens=5,
    )
    params = generator.requests[0].params
    assert (params.temperature, params.top_p, params.top_k, params.min_p) == (0.5, 0.9, 40, 0.1)
    assert (params.presence_penalty, params.frequency_penalty) == (0.5, -0.5)
    assert params.repetition_penalty == 1.2
    assert params.logit_bias == {5: 10.0, 7: -100.0}
    assert params.stop == ["zz"]
    assert params.stop_token_ids == [9]
    assert (params.seed, params.min_tokens, params.max_tokens) == (3, 1, 5)
    assert params.logprobs is None


async def test_defaults_reach_the_engine(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    await complete(client, prompt="x", temperature=None, top_p=None, top_k=-1, n=None)
    params = generator.requests[0].params
    assert (params.temperature, params.top_p, params.top_k) == (1.0, 1.0, 0)
    assert params.seed is None and params.stop == [] and params.logit_bias == {}


async def test_logprobs_completions_format(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, max_tokens=3, logprobs=2)
    logprobs = body["choices"][0]["logprobs"]
    assert logprobs["tokens"] == [" alpha", " beta", " gamma"]
    assert logprobs["token_logprobs"] == [token_logprob(0), token_logprob(1), token_logprob(2)]
    assert logprobs["text_offset"] == [0, 6, 11]
    assert len(logprobs["top_logprobs"]) == 3
    first = logprobs["top_logprobs"][0]
    assert first[" alpha"] == token_logprob(0)  # the sampled token is always listed
    assert len(first) == 2 and max(first.values()) == token_logprob(0)


async def test_logprobs_zero_lists_the_sampled_token(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, max_tokens=1, logprobs=0)
    assert body["choices"][0]["logprobs"]["top_logprobs"] == [{" alpha": token_logprob(0)}]


async def test_echo_prepends_the_prompt(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, max_tokens=1, echo=True)
    assert body["choices"][0]["text"] == "Hi alpha"
    body = await complete(client, prompt=[72, 105], temperature=0, max_tokens=1, echo=True)
    assert body["choices"][0]["text"] == "Hi alpha"  # token prompts are detokenised
    assert body["usage"]["prompt_tokens"] == 2


async def test_echo_with_logprobs_lists_prompt_tokens(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, max_tokens=2, echo=True, logprobs=1)
    logprobs = body["choices"][0]["logprobs"]
    # BOS (empty text), "H", "i": no prompt logprobs from the engine, so null.
    assert logprobs["tokens"] == ["", "H", "i", " alpha", " beta"]
    assert logprobs["token_logprobs"] == [None, None, None, token_logprob(0), token_logprob(1)]
    assert logprobs["top_logprobs"][:3] == [None, None, None]
    assert logprobs["text_offset"] == [0, 0, 1, 2, 8]


async def test_eos_inside_the_reply_is_counted(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", temperature=0, logprobs=0)
    tokens = body["choices"][0]["logprobs"]["tokens"]
    assert len(tokens) == REPLY_LENGTH + 1 and tokens[-1] == ""  # EOS has no text
    assert body["usage"]["completion_tokens"] == len(tokens)


async def test_stop_token_id_reports_the_id(client: httpx.AsyncClient) -> None:
    gamma = word_id(" gamma")
    body = await complete(client, prompt="Hi", temperature=0, stop_token_ids=[gamma])
    choice = body["choices"][0]
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (
        " alpha beta",
        "stop",
        gamma,
    )


async def test_best_of_equal_to_n_is_accepted(client: httpx.AsyncClient) -> None:
    body = await complete(client, prompt="Hi", n=2, best_of=2, seed=1)
    assert len(body["choices"]) == 2


async def test_unknown_fields_are_accepted_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hf_runtime.openai"):
        await complete(client, prompt="Hi", unknown_extra={"x": 1}, zzz=1)
    assert "unknown_extra, zzz" in caplog.text


async def test_served_under_both_prefixes(client: httpx.AsyncClient) -> None:
    for prefix in ("/v1", "/openai/v1"):
        response = await client.post(f"{prefix}/completions", json={"model": "gpt", "prompt": "a"})
        assert response.status_code == 200
