"""Reasoning models (`generation.reasoning_parser`) on the three generation APIs, in-process with
the official `openai` and `anthropic` SDKs unmodified: a scripted model thinks in
`<think>...</think>` (three characters per token, so the tags arrive split over deltas), and its
thinking comes back apart: chat `reasoning` / `reasoning_content`, a Responses `reasoning` item,
a Messages `thinking` block, whole and streamed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from hf_runtime.protocols.gateway import GatewaySettings
from tests.fakes import FakeRegistry
from tests.protocols.openai.fakes import FakeModel, ScriptedGenerator
from tests.served_app import make_served_app

pytestmark = pytest.mark.anyio
THOUGHT = "The user greets me; 2+2 is 4, so say so."
ANSWER = "Hello! The answer is 4."
THINKING = f"<think>{THOUGHT}</think>\n\n{ANSWER}"
USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def generator() -> ScriptedGenerator:
    generator = ScriptedGenerator()
    generator.scripts = [THINKING]
    generator.reasoning_parser = "deepseek_r1"
    return generator


@pytest.fixture
def app(generator: ScriptedGenerator) -> Any:
    return make_served_app(FakeRegistry([FakeModel("r1", generator=generator)]), GatewaySettings())


@pytest.fixture
def http_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def sdk(http_client: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url="http://test/v1", api_key="x", http_client=http_client, max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def claude(app: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # The anthropic SDK runs on httpx2 (its own fork of httpx).
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    async with anthropic.AsyncAnthropic(
        base_url="http://test", api_key="x", http_client=http_client, max_retries=0
    ) as client:
        yield client


async def chat_message(sdk: openai.AsyncOpenAI, **fields: Any) -> Any:
    return await sdk.chat.completions.create(model="r1", messages=USER, **fields)


# ------------------------------------------------------------------ chat completions


async def test_chat_splits_the_thinking_off(sdk: openai.AsyncOpenAI) -> None:
    completion = await chat_message(sdk)
    message = completion.choices[0].message
    assert message.content == "\n\n" + ANSWER  # vLLM keeps the content as the model wrote it
    assert message.reasoning_content == THOUGHT
    assert message.reasoning == THOUGHT
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert 0 < (usage.completion_tokens_details.reasoning_tokens or 0) < usage.completion_tokens


async def test_chat_streams_the_thinking_first_in_chunks_of_its_own(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(
        model="r1", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    kinds, thought, content, usage = [], "", "", None
    async for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            assert extra["reasoning"] == extra["reasoning_content"] and not delta.content
            thought += extra["reasoning_content"]
            kinds.append("reasoning")
        if delta.content:
            content += delta.content
            kinds.append("content")
    assert thought == THOUGHT and content == "\n\n" + ANSWER
    assert kinds.index("content") == kinds.count("reasoning")  # every reasoning chunk first
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.completion_tokens_details.reasoning_tokens or 0) > 0


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
async def test_tags_split_anywhere_stream_like_the_whole(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator, chunk: int
) -> None:
    generator.script_chunk = chunk
    whole = (await chat_message(sdk)).choices[0].message
    stream = await sdk.chat.completions.create(model="r1", messages=USER, stream=True)
    thought, content = "", ""
    async for part in stream:
        thought += (part.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        content += part.choices[0].delta.content or ""
    assert (thought, content) == (whole.reasoning_content, whole.content)
    assert (thought, content) == (THOUGHT, "\n\n" + ANSWER)


@pytest.mark.parametrize(
    ("parser", "script", "thought", "content"),
    [
        # DeepSeek-R1's template opens <think> in the prompt: the reply only closes it.
        ("deepseek_r1", f"{THOUGHT}</think>{ANSWER}", THOUGHT, ANSWER),
        # No end tag (cut off, or never closed): all of it is thinking, as vLLM 0.32 reads it.
        ("deepseek_r1", f"<think>{THOUGHT}", THOUGHT, ""),
        ("qwen3", f"<think>{THOUGHT}", THOUGHT, ""),
        # qwen3 drops a repeated </think>; deepseek_r1 keeps it in the content.
        ("qwen3", "<think>a</think>b</think>c", "a", "bc"),
        ("deepseek_r1", "<think>a</think>b</think>c", "a", "b</think>c"),
        # An incomplete tag at the end is text.
        ("deepseek_r1", "ab</thi", "ab</thi", ""),
    ],
)
async def test_the_parsers_read_like_vllms(
    sdk: openai.AsyncOpenAI,
    generator: ScriptedGenerator,
    parser: str,
    script: str,
    thought: str,
    content: str,
) -> None:
    generator.scripts, generator.reasoning_parser = [script], parser
    message = (await chat_message(sdk)).choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == (thought or None)
    assert message.content == content


async def test_without_a_parser_or_with_thinking_disabled_the_text_is_unchanged(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    generator.reasoning_parser = None
    message = (await chat_message(sdk)).choices[0].message
    assert message.content == THINKING and "reasoning_content" not in (message.model_extra or {})
    completion = await chat_message(sdk)
    assert completion.usage is not None and completion.usage.completion_tokens_details is None
    generator.reasoning_parser = "qwen3"  # honours the template's enable_thinking switch
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    message = (await chat_message(sdk, extra_body=off)).choices[0].message
    assert message.content == THINKING


async def test_tool_calls_are_read_in_the_content_only(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    generator.tool_call_parser = "hermes"
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    # A call written inside the thinking is thinking; qwen3's <tool_call> also ends it.
    generator.scripts = [f"<think>maybe {call}?</think>{call}"]
    completion = await chat_message(sdk, tools=[WEATHER])
    message = completion.choices[0].message
    assert message.reasoning_content == f"maybe {call}?"
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"
    generator.reasoning_parser, generator.scripts = "qwen3", [f"I should call it{call}"]
    message = (await chat_message(sdk, tools=[WEATHER])).choices[0].message
    assert message.reasoning_content == "I should call it"
    assert message.tool_calls is not None and len(message.tool_calls) == 1


async def test_a_grammar_holds_from_the_first_token_so_nothing_is_split(
    sdk: openai.AsyncOpenAI, generator: ScriptedGenerator
) -> None:
    """Structured outputs and forced calls constrain the reply from its first token (the model
    cannot think first), so their text is all content, never taken for unclosed thinking."""
    generator.scripts = ['{"a": 1}']
    fmt = {"type": "json_schema", "json_schema": {"name": "o", "schema": {"type": "object"}}}
    message = (await chat_message(sdk, response_format=fmt)).choices[0].message
    assert message.content == '{"a": 1}' and "reasoning" not in (message.model_extra or {})
    generator.scripts = ['[{"name": "get_weather", "parameters": {"city": "Oslo"}}]']
    message = (await chat_message(sdk, tools=[WEATHER], tool_choice="required")).choices[0].message
    assert message.tool_calls is not None and "reasoning" not in (message.model_extra or {})


# ------------------------------------------------------------------ Responses


async def test_responses_output_a_reasoning_item_first(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="r1", input="Hi")
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.summary == []
    assert [(c.type, c.text) for c in reasoning.content or []] == [("reasoning_text", THOUGHT)]
    assert message.type == "message" and response.output_text == "\n\n" + ANSWER
    assert response.usage is not None
    assert 0 < response.usage.output_tokens_details.reasoning_tokens < response.usage.output_tokens
    stored = await sdk.responses.retrieve(response.id)
    assert stored.output[0].type == "reasoning"


async def test_responses_stream_reasoning_text_events(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model="r1", input="Hi", stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    (done,) = [e for e in events if e.type == "response.reasoning_text.done"]
    assert "".join(deltas) == done.text == THOUGHT
    assert kinds.index("response.reasoning_text.done") < kinds.index("response.output_text.delta")
    items = [e.item for e in events if e.type == "response.output_item.done"]
    assert [item.type for item in items] == ["reasoning", "message"]
    final = events[-1]
    assert final.type == "response.completed"
    assert [i.type for i in final.response.output] == ["reasoning", "message"]
    assert final.response.output_text == "\n\n" + ANSWER
    assert final.response.usage is not None
    assert final.response.usage.output_tokens_details.reasoning_tokens > 0


# ------------------------------------------------------------------ Anthropic Messages


async def test_messages_return_a_thinking_block_first(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model="r1", max_tokens=200, messages=USER)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == THOUGHT and thinking.signature
    assert text.type == "text" and text.text == "\n\n" + ANSWER
    assert message.stop_reason == "end_turn"


async def test_messages_stream_thinking_deltas(claude: anthropic.AsyncAnthropic) -> None:
    async with claude.messages.stream(model="r1", max_tokens=200, messages=USER) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    kinds = [d.type for d in deltas]
    assert "".join(d.thinking for d in deltas if d.type == "thinking_delta") == THOUGHT
    assert kinds.index("signature_delta") < kinds.index("text_delta")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == THOUGHT and final.content[1].text == "\n\n" + ANSWER


async def test_messages_thinking_settings(
    claude: anthropic.AsyncAnthropic, generator: ScriptedGenerator, http_client: httpx.AsyncClient
) -> None:
    enabled = {"type": "enabled", "budget_tokens": 100}
    message = await claude.messages.create(
        model="r1", max_tokens=200, messages=USER, thinking=enabled
    )
    assert message.content[0].type == "thinking"
    generator.reasoning_parser = "qwen3"
    disabled = await claude.messages.create(
        model="r1", max_tokens=200, messages=USER, thinking={"type": "disabled"}
    )
    assert generator.chat_calls[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert [b.type for b in disabled.content] == ["text"]  # qwen3: the model does not think
    body = {"model": "r1", "max_tokens": 50, "messages": USER}
    for thinking, contains in [
        ({"type": "enabled", "budget_tokens": 50}, "budget_tokens"),  # not below max_tokens
        ({"type": "enabled"}, "budget_tokens"),
        ({"type": "sometimes"}, "thinking.type"),
    ]:
        response = await http_client.post("/v1/messages", json={**body, "thinking": thinking})
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["type"] == "error" and contains in error["error"]["message"]
    generator.reasoning_parser = None  # thinking asked of a model that cannot split it out
    response = await http_client.post(
        "/v1/messages", json={**body, "thinking": {"type": "adaptive"}}
    )
    assert response.status_code == 400 and "reasoning_parser" in response.text


async def test_the_next_turn_takes_the_output_back_without_its_thinking(
    sdk: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, generator: ScriptedGenerator
) -> None:
    """Agents send a turn's whole output back: reasoning items and thinking blocks are
    accepted and left out of the prompt (the models' templates drop earlier thinking)."""
    first = await sdk.responses.create(model="r1", input="Hi", store=False)
    follow_up = [*first.output, {"role": "user", "content": "And 3+3?"}]
    await sdk.responses.create(model="r1", input=follow_up, store=False)
    assert generator.chat_calls[-1]["messages"][-2] == {
        "role": "assistant", "content": "\n\n" + ANSWER,
    }  # fmt: skip
    reply = await claude.messages.create(model="r1", max_tokens=200, messages=USER)
    history = [*USER, {"role": "assistant", "content": reply.content}, *USER]
    await claude.messages.create(model="r1", max_tokens=200, messages=history)
    assert generator.chat_calls[-1]["messages"][1] == {
        "role": "assistant", "content": "\n\n" + ANSWER,
    }  # fmt: skip
