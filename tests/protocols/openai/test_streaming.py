"""Server-sent events: framing, chunk contents, usage, n>1, errors and client disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import (
    REPLY_LENGTH,
    FakeModel,
    ScriptedGenerator,
    reply_words,
    token_logprob,
)
from tests.protocols.openai.helpers import RawCall, assert_error, parse_sse, wait_until

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Hi"}]
GREEDY = "".join(reply_words())


async def stream(client: httpx.AsyncClient, route: str, **fields: Any) -> list[Any]:
    response = await client.post(f"/v1{route}", json={"model": "gpt", "stream": True, **fields})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    return parse_sse(response.text)


def chunks_of(events: list[Any]) -> list[dict[str, Any]]:
    return events[:-1]


async def test_completion_stream_chunks(client: httpx.AsyncClient) -> None:
    chunks = chunks_of(await stream(client, "/completions", prompt="Hi", temperature=0))
    assert len({(c["id"], c["created"]) for c in chunks}) == 1
    assert chunks[0]["id"].startswith("cmpl-")
    for chunk in chunks:
        assert chunk["object"] == "text_completion" and chunk["model"] == "gpt"
        assert "usage" not in chunk  # only with stream_options.include_usage
        assert len(chunk["choices"]) == 1
    choices = [c["choices"][0] for c in chunks]
    # Token granular: one event per word, then the final EOS delta (no text) with the reason.
    assert [c["text"] for c in choices] == [*reply_words(), ""]
    assert [c["finish_reason"] for c in choices] == [None] * REPLY_LENGTH + ["stop"]
    assert all(c["logprobs"] is None for c in choices)


async def test_completion_stream_usage(client: httpx.AsyncClient) -> None:
    chunks = chunks_of(
        await stream(
            client,
            "/completions",
            prompt=["a", "b"],
            n=2,
            max_tokens=2,
            stream_options={"include_usage": True},
        )
    )
    *content, last = chunks
    assert all(c["usage"] is None for c in content)
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}
    finals = [c["choices"][0] for c in content if c["choices"][0]["finish_reason"]]
    assert sorted(c["index"] for c in finals) == [0, 1, 2, 3]
    assert {c["finish_reason"] for c in finals} == {"length"}


async def test_completion_stream_echo_and_logprobs(client: httpx.AsyncClient) -> None:
    chunks = chunks_of(
        await stream(
            client, "/completions", prompt="Hi", temperature=0, max_tokens=2, echo=True, logprobs=1
        )
    )
    first, second = (c["choices"][0] for c in chunks)
    assert first["text"] == "Hi alpha"
    assert first["logprobs"]["tokens"] == ["", "H", "i", " alpha"]
    assert first["logprobs"]["token_logprobs"] == [None, None, None, token_logprob(0)]
    assert first["logprobs"]["text_offset"] == [0, 0, 1, 2]
    assert second["text"] == " beta"
    assert second["logprobs"]["text_offset"] == [8]  # offsets continue across chunks
    assert second["logprobs"]["top_logprobs"] == [{" beta": token_logprob(1)}]


async def test_held_back_text_is_never_an_empty_event(client: httpx.AsyncClient) -> None:
    # The engine holds back " g" / " ga" / " gam" while they may start the stop string, so
    # some of its deltas are empty: none of those may become an event.
    chunks = chunks_of(
        await stream(client, "/completions", prompt="Hi", temperature=0, stop=[" gamma"])
    )
    choices = [c["choices"][0] for c in chunks]
    assert "".join(c["text"] for c in choices) == " alpha beta"
    assert all(c["text"] for c in choices[:-1])
    assert choices[-1]["finish_reason"] == "stop" and choices[-1]["stop_reason"] == " gamma"


async def test_chat_stream_chunks(client: httpx.AsyncClient) -> None:
    chunks = chunks_of(await stream(client, "/chat/completions", messages=USER, temperature=0))
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    choices = [c["choices"][0] for c in chunks]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert all("role" not in c["delta"] for c in choices[1:])
    assert [c["delta"].get("content") for c in choices[1:-1]] == reply_words()
    assert choices[-1] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert [c["finish_reason"] for c in choices[:-1]] == [None] * (len(choices) - 1)


async def test_chat_stream_n2_interleaves_with_usage(client: httpx.AsyncClient) -> None:
    chunks = chunks_of(
        await stream(
            client,
            "/chat/completions",
            messages=USER,
            n=2,
            seed=11,
            temperature=1.0,
            max_tokens=3,
            logprobs=True,
            stream_options={"include_usage": True},
        )
    )
    *content, last = chunks
    order = [c["choices"][0]["index"] for c in content]
    assert order[:2] == [0, 1]  # the two role chunks open the stream
    assert order[2:] != sorted(order[2:])  # the choices' tokens interleave
    for index in (0, 1):
        mine = [c["choices"][0] for c in content if c["choices"][0]["index"] == index]
        assert [m["delta"].get("role") for m in mine].count("assistant") == 1
        text = "".join(m["delta"].get("content", "") for m in mine)
        tokens = [e["token"] for m in mine if m["logprobs"] for e in m["logprobs"]["content"]]
        assert "".join(tokens) == text and len(tokens) == 3
        assert [m["finish_reason"] for m in mine] == [None, None, None, "length"]
    assert last["usage"]["completion_tokens"] == 6
    assert last["choices"] == []


async def test_error_before_streaming_keeps_its_status(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={"model": "gpt", "messages": USER, "stream": True, "max_tokens": 10_000},
    )
    assert_error(response, 400, "max_tokens", "maximum context length")


async def test_error_mid_stream_is_an_event_then_done(
    client: httpx.AsyncClient, fake_models: FakeRegistry
) -> None:
    failing = ScriptedGenerator(fail_after=2)
    fake_models.models["gpt"] = FakeModel("gpt", generator=failing)
    events = await stream(client, "/chat/completions", messages=USER, temperature=0)
    *chunks, error_event, done = events
    assert done == "[DONE]"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:]] == reply_words()[:2]
    assert error_event == {
        "error": {
            "message": "Internal server error: RuntimeError",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
@pytest.mark.parametrize(
    ("route", "fields"),
    [("/chat/completions", {"messages": USER}), ("/completions", {"prompt": ["a", "b"]})],
)
async def test_client_disconnect_aborts_every_sequence(
    root_app: Starlette,
    generator: ScriptedGenerator,
    spec_version: str,
    route: str,
    fields: dict[str, Any],
) -> None:
    generator.token_delay = 0.01  # with ignore_eos this would run 500+ tokens (5+ s)
    body = {"model": "gpt", "stream": True, "ignore_eos": True, "n": 2, **fields}
    call = RawCall(root_app, f"/v1{route}", body, spec_version)
    task = asyncio.create_task(call.run())
    await wait_until(lambda: len(call.body_chunks()) >= 6)
    call.disconnected.set()
    await asyncio.wait_for(task, 30)
    expected = 4 if route == "/completions" else 2
    assert len(generator.aborted) == expected and generator.finished == []
    assert generator.active == 0
    assert call.messages[0]["status"] == 200


async def test_disconnect_aborts_a_non_streaming_request(
    root_app: Starlette, generator: ScriptedGenerator
) -> None:
    generator.token_delay = 0.01
    body = {"model": "gpt", "prompt": "Hi", "n": 3, "ignore_eos": True}
    call = RawCall(root_app, "/v1/completions", body, "2.4")
    task = asyncio.create_task(call.run())
    await wait_until(lambda: len(generator.requests) == 3)
    call.disconnected.set()
    await asyncio.wait_for(task, 30)
    assert len(generator.aborted) == 3 and generator.active == 0
    assert call.messages[0]["status"] == 499  # nobody reads it; it shows in access logs


async def test_finished_stream_leaves_nothing_running(
    client: httpx.AsyncClient, generator: ScriptedGenerator
) -> None:
    await stream(client, "/completions", prompt="Hi", n=3, seed=1)
    assert len(generator.finished) == 3 and generator.aborted == []
    assert generator.active == 0
    assert GREEDY  # (the greedy reply is non-empty: the fake is sane)
