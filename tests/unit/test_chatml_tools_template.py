"""configs/templates/chatml_tools.jinja: SmolLM2's own text without tools, Hermes-style tools
with them (what the hermes parser reads back), and the default config serving it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hf_runtime.config import REPO_ROOT, load_config
from hf_runtime.protocols.openai.tool_parsers import PARSERS, extract

TEMPLATE = REPO_ROOT / "configs" / "templates" / "chatml_tools.jinja"

CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "system", "content": "Now be verbose."},
        {"role": "user", "content": "Another, with unicode: café\n\ttabs"},
    ],
    [{"role": "assistant", "content": "I start."}],
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_without_tools_it_renders_smollm2s_own_text(
    tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool
) -> None:
    own = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    ours = tokenizer.apply_chat_template(
        messages,
        chat_template=TEMPLATE.read_text(),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    assert ours == own


def test_with_tools_it_renders_hermes_blocks(tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    # decoded, as the OpenAI layer hands arguments to templates
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "windy"},
    ]
    text = tokenizer.apply_chat_template(
        messages,
        tools=TOOLS,
        chat_template=TEMPLATE.read_text(),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face\n\n# Tools\n"
    )
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in text
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call}<|im_end|>\n" in text
    assert (
        "<|im_start|>user\n<tool_response>\n22 C\n</tool_response>\n<tool_response>\nwindy\n"
        "</tool_response><|im_end|>\n<|im_start|>assistant\n"
    ) in text
    # What the template shows the model is what the hermes parser reads back.
    (parsed,) = extract(PARSERS["hermes"](), call).calls
    assert (parsed.name, json.loads(parsed.arguments)) == ("get_weather", {"city": "Paris"})


def test_a_system_message_leads_the_tools_turn(tokenizer: Any) -> None:
    messages = [{"role": "system", "content": "Sys."}, {"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(
        messages, tools=TOOLS, chat_template=TEMPLATE.read_text(), tokenize=False
    )
    assert text.startswith("<|im_start|>system\nSys.\n\n# Tools\n")
    assert text.count("<|im_start|>system") == 1


def test_the_default_config_serves_smollm2_with_it() -> None:
    (smollm2,) = [m for m in load_config(args={}, env={}).models if m.model_name == "smollm2"]
    assert smollm2.generation.tool_call_parser == "hermes"
    path = smollm2.generation.chat_template
    assert path is not None and not Path(path).is_absolute()
    # Relative to the server's working directory: the repository (or the Bento's) root.
    assert (REPO_ROOT / path).resolve() == TEMPLATE.resolve()
