"""/tokenize and /detokenize bodies, in vLLM's shapes.

vLLM declares two tokenize bodies, `{prompt, add_special_tokens (default true)}` and
`{messages, add_generation_prompt, continue_final_message, add_special_tokens (default false),
chat_template, chat_template_kwargs, tools}`; here one model holds both and `check()` demands
exactly one of `prompt` and `messages`, so the error names the field. Types are pydantic's
(a 400 naming the field); the rules that read like vLLM's messages are in `check()`.
Responses are declared for the OpenAPI documents; the handlers build them as plain dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, StrictInt

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.openai.chat_schemas import ChatCompletionRequest, ChatMessage
from hf_runtime.protocols.openai.schemas import OpenAIRequest


class TokenizeRequest(OpenAIRequest):
    """`{"model"?, "prompt"}` or `{"model"?, "messages"}`, plus the options of either shape."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    # None: vLLM's default for the shape (true for a prompt; false for messages, whose chat
    # template writes the special tokens itself).
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = False
    add_generation_prompt: bool | None = True
    continue_final_message: bool | None = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None

    @property
    def special_tokens(self) -> bool:
        if self.add_special_tokens is not None:
            return self.add_special_tokens
        return self.messages is None

    def check(self) -> None:
        if self.prompt is None and self.messages is None:
            raise InvalidInput("prompt (a text) or messages (a chat) is required", param="prompt")
        if self.prompt is not None and self.messages is not None:
            raise InvalidInput(
                "give prompt or messages, not both: tokenize one text or one chat",
                param="messages",
            )
        if self.messages is None:
            return
        if not self.messages:
            raise InvalidInput("messages must not be empty", param="messages")
        if self.add_generation_prompt and self.continue_final_message:
            raise InvalidInput(
                "continue_final_message and add_generation_prompt cannot both be true; set "
                "add_generation_prompt to false to continue the final message",
                param="continue_final_message",
            )

    def template_messages(self) -> list[dict[str, Any]]:
        """The messages exactly as /chat/completions hands them to the chat template."""
        chat = ChatCompletionRequest.model_construct(messages=self.messages or [])
        return chat.template_messages()


class DetokenizeRequest(OpenAIRequest):
    """`{"model"?, "tokens": [ids]}`. An empty list decodes to "" (as vLLM)."""

    tokens: list[StrictInt]

    def check(self) -> None:
        negative = next((t for t in self.tokens if t < 0), None)
        if negative is not None:
            raise InvalidInput(f"token ids must be non-negative, got {negative}", param="tokens")


# ---------------------------------------------------------------- responses (documented)


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None  # only with return_token_strs


class DetokenizeResponse(BaseModel):
    prompt: str
