"""An agent built on the OpenAI Agents SDK (`openai-agents`, unmodified) runs against the
Responses API by changing only its client's base URL: one function tool called by the model,
its output fed back, the final answer; plain and streamed runs. In-process, over the scripted
generator (the hermes parser reads its <tool_call>); tracing off (it would upload to OpenAI)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.protocols.openai.fakes import ScriptedGenerator

agents = pytest.importorskip("agents")
pytestmark = pytest.mark.anyio

CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
ANSWER = "It is sunny in Paris."


def weather_agent(root_app: Starlette, generator: ScriptedGenerator) -> agents.Agent:
    client = openai.AsyncOpenAI(
        base_url="http://test/v1",  # the only change from an agent using OpenAI
        api_key="x",
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=root_app)),
        max_retries=0,
    )
    called: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        called.append(city)
        generator.scripts = [ANSWER]  # the model's next turn answers
        return f"Sunny, 22 C in {city}"

    generator.tool_call_parser = "hermes"
    generator.scripts = [CALL]
    return agents.Agent(
        name="weather",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model="gpt", openai_client=client),
    )


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agent_calls_its_tool_and_answers(
    root_app: Starlette, generator: ScriptedGenerator, streamed: bool
) -> None:
    agent = weather_agent(root_app, generator)
    config = agents.RunConfig(tracing_disabled=True)
    if streamed:
        run = agents.Runner.run_streamed(agent, "Weather in Paris?", run_config=config)
        async for _ in run.stream_events():
            pass
        result: agents.RunResultBase = run
    else:
        result = await agents.Runner.run(agent, "Weather in Paris?", run_config=config)
    assert result.final_output == ANSWER
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    # The second turn sent the call and its output back as input items.
    second = generator.chat_calls[-1]["messages"]
    assert second[0] == {"role": "system", "content": "Answer with the weather tool."}
    assert second[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert second[3]["role"] == "tool" and "Sunny" in second[3]["content"]
    assert json.loads(result.new_items[0].raw_item.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
