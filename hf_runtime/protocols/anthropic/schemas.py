"""Anthropic Messages request bodies, checked and translated into the chat request the OpenAI
layer runs (`ChatCompletionRequest`): one validation and generation path for both APIs.

Translation: `system` -> a system message; a user turn's `tool_result` blocks -> `tool`
messages (before its text); an assistant turn's `tool_use` blocks -> `tool_calls`; `tools`
(`input_schema`) -> function tools; `tool_choice` auto / any / tool / none -> "auto" /
"required" / a named function / "none" (forced calls are constrained by the schema, as on
chat); `stop_sequences` -> `stop`; a final assistant text turn is continued (a prefill);
`thinking` disabled -> chat_template_kwargs `enable_thinking: false` (templates such as Qwen3's
then leave thinking out), enabled or adaptive -> accepted for a model served with a reasoning
parser (checked once the model is known: `check_thinking`). Anything that would change the
output and is not implemented (images, documents, thinking without a reasoning parser, server
tools, MCP) is a 400 naming it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.protocols.openai.chat_schemas import ChatCompletionRequest

ROLES = ("user", "assistant")
# Request fields Anthropic defines that change the output and are not implemented here.
UNIMPLEMENTED = ("mcp_servers", "container", "context_management")


class MessageParam(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]]


class ConversationFields(BaseModel):
    """What count_tokens and messages share: the conversation and its tools."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str
    messages: list[MessageParam]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None

    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})

    def chat_request(self, **sampling: Any) -> ChatCompletionRequest:
        """The equivalent chat request (raises InvalidInput / Unsupported)."""
        for name in UNIMPLEMENTED:
            if (self.model_extra or {}).get(name):
                raise Unsupported(f"{name} is not supported by this server", param=name)
        kind = None if self.thinking is None else self.thinking.get("type")
        if kind not in (None, "disabled", "enabled", "adaptive"):
            raise InvalidInput(
                "thinking.type must be one of enabled, adaptive, disabled", param="thinking"
            )
        if not self.messages:
            raise InvalidInput("messages: at least one message is required", param="messages")
        messages = _system(self.system) + _conversation(self.messages)
        tools = None if self.tools is None else [_tool(i, t) for i, t in enumerate(self.tools)]
        choice, parallel = _tool_choice(self.tool_choice)
        template_kwargs = {"enable_thinking": False} if kind == "disabled" else None
        # A final assistant text turn is a prefill: the reply continues it (Anthropic's).
        last = messages[-1]
        prefill = last["role"] == "assistant" and not last.get("tool_calls")
        return ChatCompletionRequest(
            model=self.model,
            messages=messages,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=parallel,
            chat_template_kwargs=template_kwargs,
            add_generation_prompt=not prefill,
            continue_final_message=prefill,
            **sampling,
        )

    def check_thinking(self, reasoning_parser: str | None, model: str) -> None:
        """Thinking asked for is served only where the model's thinking is split out (its
        reasoning parser, and no forced tool call or output format: they hold from the first
        token). budget_tokens is checked as Anthropic does but not enforced: the model thinks
        until it closes its reasoning, within max_tokens."""
        if self.thinking is None or self.thinking.get("type") == "disabled":
            return
        if reasoning_parser is None:
            raise Unsupported(
                f"thinking is not supported for model {model}: extended thinking needs a "
                "reasoning model served with generation.reasoning_parser, and no forced "
                "tool_choice or output_config.format; leave it out or set it to "
                "{'type': 'disabled'}",
                param="thinking",
            )


class MessagesRequest(ConversationFields):
    max_tokens: int
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool | None = False
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None

    def to_chat(self) -> ChatCompletionRequest:
        if self.max_tokens < 1:
            raise InvalidInput(
                f"max_tokens: must be at least 1, got {self.max_tokens}", param="max_tokens"
            )
        t = self.temperature
        if t is not None and (math.isnan(t) or not 0.0 <= t <= 1.0):
            raise InvalidInput(
                f"temperature: must be between 0 and 1, got {t}", param="temperature"
            )
        if self.top_k is not None and self.top_k < 0:
            raise InvalidInput(f"top_k: must be non-negative, got {self.top_k}", param="top_k")
        thinking = self.thinking or {}
        budget = thinking.get("budget_tokens")
        whole = isinstance(budget, int) and not isinstance(budget, bool)
        if thinking.get("type") == "enabled" and not (whole and 1 <= budget < self.max_tokens):
            raise InvalidInput(
                "thinking.budget_tokens: an integer at least 1 and below max_tokens is required",
                param="thinking",
            )
        return self.chat_request(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=self.stop_sequences or None,
            stream=bool(self.stream),
            response_format=_output_format(self.output_config),
        )


class CountTokensRequest(ConversationFields):
    def to_chat(self) -> ChatCompletionRequest:
        return self.chat_request()


def _output_format(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """`output_config` (structured outputs: a JSON schema) as OpenAI's response_format."""
    if not config:
        return None
    if config.get("effort") is not None:
        raise Unsupported(
            "output_config.effort is not supported by this server", param="output_config"
        )
    spec = config.get("format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        raise InvalidInput(
            "output_config.format: only {'type': 'json_schema', 'schema': {...}} is supported",
            param="output_config",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise InvalidInput(
            "output_config.format.schema: a JSON Schema object is required", param="output_config"
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _text_of(blocks: str | list[dict[str, Any]], where: str) -> str:
    """The text of a string or of a list of text blocks."""
    if isinstance(blocks, str):
        return blocks
    texts = []
    for j, block in enumerate(blocks):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidInput(
                f"{where}[{j}]: only text blocks ({{'type': 'text', 'text': ...}}) are "
                f"supported here, got type {str(block.get('type'))[:40]!r}",
                param=where.split("[")[0].split(".")[0],
            )
        texts.append(block["text"])
    return "\n".join(texts)


def _system(system: str | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if system is None:
        return []
    text = _text_of(system, "system")
    return [{"role": "system", "content": text}] if text else []


def _conversation(messages: list[MessageParam]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role not in ROLES:
            raise InvalidInput(
                f"{where}.role: must be 'user' or 'assistant', got {message.role[:40]!r}",
                param="messages",
            )
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
        elif message.role == "user":
            out.extend(_user_turn(message.content, where))
        else:
            out.append(_assistant_turn(message.content, where))
    return out


def _block_type(block: dict[str, Any], where: str, allowed: tuple[str, ...]) -> str:
    kind = block.get("type")
    if kind not in allowed:
        shown = str(kind)[:40]
        raise InvalidInput(
            f"{where}: content block type {shown!r} is not supported in this turn; "
            f"supported: {', '.join(allowed)}",
            param="messages",
        )
    return str(kind)


def _user_turn(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Tool results (each a `tool` message, first: they answer the previous turn), then text."""
    results, texts = [], []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        if _block_type(block, at, ("text", "tool_result")) == "text":
            texts.append(_text_of([block], at))
            continue
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInput(f"{at}.tool_use_id: a string is required", param="messages")
        content = block.get("content", "")
        text = _text_of(content, f"{at}.content") if isinstance(content, (str, list)) else None
        if text is None:
            raise InvalidInput(
                f"{at}.content: must be a string or a list of text blocks", param="messages"
            )
        if block.get("is_error"):
            text = f"Error: {text}"
        results.append({"role": "tool", "tool_call_id": call_id, "content": text})
    if texts:
        results.append({"role": "user", "content": "\n".join(texts)})
    return results


# An earlier turn's thinking, echoed back by clients: not part of the prompt (reasoning models'
# templates leave it out; the Responses API skips earlier reasoning items the same way).
THINKING_BLOCKS = ("thinking", "redacted_thinking")


def _assistant_turn(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = _block_type(block, at, ("text", "tool_use", *THINKING_BLOCKS))
        if kind in THINKING_BLOCKS:
            continue
        if kind == "text":
            texts.append(_text_of([block], at))
            continue
        call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(call_id, str) or not isinstance(name, str) or not name:
            raise InvalidInput(f"{at}: tool_use needs an id and a name", param="messages")
        if not isinstance(arguments, dict):
            raise InvalidInput(f"{at}.input: must be an object", param="messages")
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        )
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool(index: int, tool: dict[str, Any]) -> dict[str, Any]:
    where = f"tools[{index}]"
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise Unsupported(
            f"{where}: tool type {str(kind)[:60]!r} is not supported (Anthropic's server and "
            "client tools run on Anthropic's side); only custom tools with an input_schema",
            param="tools",
        )
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where}.input_schema: a JSON Schema object is required", param="tools")
    function: dict[str, Any] = {"name": tool.get("name"), "parameters": schema}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any] | None) -> tuple[str | dict[str, Any] | None, bool | None]:
    """Anthropic's tool_choice as OpenAI's (tool_choice, parallel_tool_calls)."""
    if choice is None:
        return None, None
    parallel = None if not choice.get("disable_parallel_tool_use") else False
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput(
                "tool_choice: type 'tool' needs the tool's name", param="tool_choice"
            )
        return {"type": "function", "function": {"name": name}}, parallel
    raise InvalidInput(
        f"tool_choice.type: must be 'auto', 'any', 'tool' or 'none', got {str(kind)[:40]!r}",
        param="tool_choice",
    )
