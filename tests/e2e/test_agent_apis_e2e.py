"""The agent APIs against a real `bentoml serve` of SmolLM2 as the default config ships it, on
each backend (the package's shared servers: tests/e2e/conftest.py), with the official SDKs
unmodified: vLLM's structured_outputs through the `openai` SDK, the Anthropic Messages API
through the `anthropic` SDK and the Responses API through the `openai` SDK, whose greedy text
equals chat/completions' for the same conversation."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GREEDY = {"temperature": 0}
QUESTION = "Name a colour."
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def base_url(smollm2_url: str) -> str:
    """SmolLM2 on one backend (tests/e2e/conftest.py: smollm2_url)."""
    return smollm2_url


@pytest.fixture(scope="module")
def oai(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def claude(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0)


# ---------------------------------------------------------------- structured_outputs


@pytest.mark.parametrize(
    ("constraint", "check"),
    [
        ({"choice": ["red", "green", "blue"]}, lambda t: t in ("red", "green", "blue")),
        ({"regex": "[A-Z][a-z]{2,8}-[0-9]{2}"},
         lambda t: re.fullmatch("[A-Z][a-z]{2,8}-[0-9]{2}", t)),
        ({"grammar": 'root ::= "colour: " ("red" | "green" | "blue")'},
         lambda t: t in ("colour: red", "colour: green", "colour: blue")),
    ],
)  # fmt: skip
@pytest.mark.parametrize("route", ["chat", "completions"])
def test_structured_outputs_constrain_the_text(
    oai: openai.OpenAI, constraint: dict[str, Any], check: Any, route: str
) -> None:
    extra = {"structured_outputs": constraint}
    if route == "chat":
        reply = oai.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": QUESTION}], max_tokens=24,
            temperature=0, extra_body=extra,
        )  # fmt: skip
        text, finish = reply.choices[0].message.content or "", reply.choices[0].finish_reason
    else:
        done = oai.completions.create(
            model="smollm2", prompt=QUESTION, max_tokens=24, temperature=0, extra_body=extra
        )
        text, finish = done.choices[0].text, done.choices[0].finish_reason
    assert finish == "stop", text
    assert check(text), text


def test_bad_structured_outputs_are_400(oai: openai.OpenAI) -> None:
    for constraint in ({"regex": "a("}, {"grammar": "root ::= nope"}, {"choice": []}):
        with pytest.raises(openai.BadRequestError) as caught:
            oai.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": "x"}], max_tokens=4,
                extra_body={"structured_outputs": constraint},
            )  # fmt: skip
        assert caught.value.body["param"] == "structured_outputs"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "x"}], max_tokens=4,
            extra_body={"guided_regex": "a+"},
        )  # fmt: skip
    assert caught.value.body["param"] == "guided_regex"  # type: ignore[index]


# ---------------------------------------------------------------- Anthropic Messages


def test_messages_text_equals_chat_completions(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    chat = oai.chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTION},
        ],
        max_tokens=24,
        temperature=0,
    )
    message = claude.messages.create(
        model="smollm2", max_tokens=24, system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}], extra_body=GREEDY,
    )  # fmt: skip
    assert message.content[0].text == chat.choices[0].message.content
    assert message.usage.input_tokens == chat.usage.prompt_tokens  # type: ignore[union-attr]
    assert message.usage.output_tokens == chat.usage.completion_tokens  # type: ignore[union-attr]
    expected = {"stop": "end_turn", "length": "max_tokens"}[chat.choices[0].finish_reason]
    assert message.stop_reason == expected
    with claude.messages.stream(
        model="smollm2", max_tokens=24, system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}], extra_body=GREEDY,
    ) as stream:  # fmt: skip
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == message.content[0].text == final.content[0].text
    assert final.stop_reason == message.stop_reason


def test_forced_tool_use_validates_and_feeds_the_next_turn(claude: anthropic.Anthropic) -> None:
    tools: Any = [
        {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER}
    ]
    ask = {"role": "user", "content": "What is the weather in Paris, in celsius?"}
    message = claude.messages.create(
        model="smollm2", max_tokens=60, messages=[ask], tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"}, extra_body=GREEDY,
    )  # fmt: skip
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    jsonschema.validate(block.input, WEATHER)
    assert message.stop_reason == "tool_use"
    answer = claude.messages.create(
        model="smollm2", max_tokens=16, tools=tools, extra_body=GREEDY,
        messages=[
            ask,
            {"role": "assistant", "content": [block.model_dump()]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": "18 C, sunny"}]},
        ],
    )  # fmt: skip
    assert answer.content and answer.stop_reason in ("end_turn", "max_tokens")


def test_count_tokens_equals_tokenize(base_url: str, claude: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": QUESTION}]
    counted = claude.messages.count_tokens(model="smollm2", messages=messages, system="Hi.")
    tokenized = httpx.post(
        f"{base_url}/tokenize",
        json={"model": "smollm2", "messages": [{"role": "system", "content": "Hi."}, *messages]},
        timeout=30,
    ).json()
    assert counted.input_tokens == tokenized["count"]


def test_messages_errors_in_anthropics_shape(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(
            model="nope", max_tokens=4, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(
            model="smollm2", max_tokens=4, messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],  # type: ignore[list-item]
        )  # fmt: skip
    assert "web_search" in json.dumps(caught.value.body)


# ---------------------------------------------------------------- OpenAI Responses


def test_responses_text_equals_chat_completions_and_streams_the_same(oai: openai.OpenAI) -> None:
    chat = oai.chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTION},
        ],
        max_tokens=24,
        temperature=0,
    )
    response = oai.responses.create(
        model="smollm2", instructions="Be brief.", input=QUESTION, max_output_tokens=24,
        temperature=0,
    )  # fmt: skip
    assert response.output_text == chat.choices[0].message.content
    assert response.usage is not None and chat.usage is not None
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    expected = "incomplete" if chat.choices[0].finish_reason == "length" else "completed"
    assert response.status == expected
    counted = oai.responses.input_tokens.count(
        model="smollm2", instructions="Be brief.", input=QUESTION
    )
    assert counted.input_tokens == response.usage.input_tokens
    events = list(
        oai.responses.create(
            model="smollm2", instructions="Be brief.", input=QUESTION, max_output_tokens=24,
            temperature=0, stream=True,
        )
    )  # fmt: skip
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == response.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_forced_call_and_previous_response_id(oai: openai.OpenAI) -> None:
    tool: Any = {"type": "function", "name": "get_weather", "description": "Current weather",
                 "parameters": WEATHER, "strict": True}  # fmt: skip
    first = oai.responses.create(
        model="smollm2", input="What is the weather in Paris, in celsius?", tools=[tool],
        tool_choice={"type": "function", "name": "get_weather"}, temperature=0,
        max_output_tokens=60,
    )  # fmt: skip
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    second = oai.responses.create(
        model="smollm2", previous_response_id=first.id, tools=[tool], temperature=0,
        max_output_tokens=16,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
    )  # fmt: skip
    assert second.previous_response_id == first.id and second.status in ("completed", "incomplete")
    # The earlier turn is carried: the prompt holds the first question and the call.
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    assert oai.responses.retrieve(second.id).output_text == second.output_text
    items = list(oai.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    with pytest.raises(openai.BadRequestError):
        oai.responses.cancel(second.id)
    oai.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="smollm2", input="x", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message
