"""OpenAI chat completions request body: messages, and their conversion for chat templates.

The sampling fields and their checks are shared with completions (schemas.SamplingFields);
this module adds what only chat has: messages (roles, text content parts, tool calls) and the
chat-specific lengths and logprobs fields.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.openai.schemas import MAX_LOGPROBS, SamplingFields

CHAT_ROLES = ("system", "user", "assistant", "tool", "developer")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message. Extra keys (name, tool_call_id, ...) travel to the chat template."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool | None = True
    continue_final_message: bool | None = False
    tools: list[dict[str, Any]] | None = None
    # Checked (with response_format) by structured.py, which knows OpenAI's shapes.
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    @property
    def max_new_tokens(self) -> int | None:
        """max_completion_tokens (OpenAI's current name) wins over the legacy max_tokens."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def max_tokens_param(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    @property
    def logprobs_count(self) -> int | None:
        """SamplingParams.logprobs: None without logprobs, else the number of alternatives."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def check(self) -> None:
        self.check_sampling(self.max_new_tokens, self.max_tokens_param)
        if self.top_logprobs is not None:
            if not 0 <= self.top_logprobs <= MAX_LOGPROBS:
                raise InvalidInput(
                    f"top_logprobs must be between 0 and {MAX_LOGPROBS}, got {self.top_logprobs}",
                    param="top_logprobs",
                )
            if self.top_logprobs > 0 and not self.logprobs:  # 0 asks for nothing: tolerated
                raise InvalidInput(
                    "top_logprobs requires logprobs to be true", param="top_logprobs"
                )
        if self.add_generation_prompt and self.continue_final_message:
            raise InvalidInput(
                "continue_final_message and add_generation_prompt cannot both be true; set "
                "add_generation_prompt to false to continue the final message",
                param="continue_final_message",
            )
        if not self.messages:
            raise InvalidInput("messages must not be empty", param="messages")

    def template_messages(self) -> list[dict[str, Any]]:
        """Messages as chat templates expect them: text content, decoded tool-call arguments."""
        return [_template_message(i, m) for i, m in enumerate(self.messages)]


def _template_message(index: int, message: ChatMessage) -> dict[str, Any]:
    where = f"messages[{index}]"
    if message.role not in CHAT_ROLES:
        raise InvalidInput(
            f"{where}.role {message.role!r} is not one of {', '.join(CHAT_ROLES)}",
            param="messages",
        )
    out = message.model_dump(exclude_none=True)
    # Most chat templates only know "system"; OpenAI's "developer" role means the same thing.
    out["role"] = "system" if message.role == "developer" else message.role
    content = message.content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if part.type != "text":
                raise InvalidInput(
                    f"{where}.content[{j}]: content part type {part.type!r} is not supported; "
                    "this model accepts 'text' parts only",
                    param="messages",
                )
            if part.text is None:
                raise InvalidInput(f"{where}.content[{j}].text is required", param="messages")
            texts.append(part.text)
        out["content"] = "\n".join(texts)
    elif content is None:
        if message.role != "assistant":
            raise InvalidInput(
                f"{where}.content is required for role {message.role!r}", param="messages"
            )
        out["content"] = None
    if message.tool_calls:
        out["tool_calls"] = [_decoded_tool_call(call) for call in message.tool_calls]
    return out


def _decoded_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """Templates iterate `arguments` as a mapping; OpenAI sends it as a JSON string."""
    function = call.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        try:
            arguments = json.loads(function["arguments"])
        except ValueError:
            return call
        return {**call, "function": {**function, "arguments": arguments}}
    return call
