"""Responses API request bodies, checked and translated into the chat request the chat route
runs (`ChatCompletionRequest`), so validation, sampling, tools and grammars are the chat's.

Translation: `instructions` -> a system message first (not carried to later turns, as OpenAI
does); `input` string -> a user message; input items: messages (`input_text` / `output_text`
parts), `function_call` -> an assistant message's `tool_calls`, `function_call_output` -> a
`tool` message; `text.format` -> `response_format`; function `tools` (flat: name, parameters)
-> chat tools; `tool_choice` / `parallel_tool_calls` as on chat; `max_output_tokens` ->
`max_tokens`; vLLM's sampling extensions (`stop`, `seed`, `top_k`, ...) as they are. Every
field of the SDK's ResponseCreateParams is either honoured, accepted as changing nothing here
(ACCEPTED), or a 400 naming it (UNIMPLEMENTED, `include`, ...). Built-in tools (web search,
file search, computer use, code interpreter, ...) are a 400 naming them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.protocols.openai.chat_schemas import ChatCompletionRequest

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TEXT_PARTS = ("input_text", "output_text", "text")
# The SDK's request fields (openai.types.responses.ResponseCreateParams) that would change the
# output and are not implemented here: a 400 naming them unless at a value that asks for
# nothing (None always passes). `include` and `prompt_cache_options` are checked on their own.
UNIMPLEMENTED: dict[str, tuple[Any, ...]] = {
    "background": (False,),
    "background_options": ({},),
    "conversation": (),
    "context_management": ([],),
    "prompt": (),
    "max_tool_calls": (),
    "moderation": (),
    "image": ({},),
    "access_programs": ({},),
    "personality": (),
    "top_logprobs": (0,),
    "truncation": ("disabled",),
}
# The SDK's fields that change nothing here, accepted (and echoed where OpenAI echoes them):
# caching hints, identifiers for OpenAI's abuse checks, the tier (answered as "default"), and
# stream options (no `obfuscation` field is sent).
ACCEPTED = ("prompt_cache_key", "prompt_cache_retention", "safety_identifier", "service_tier",
            "stream_options")  # fmt: skip
# vLLM's sampling extensions of the Responses request (and chat's limits), passed to the chat
# request, which checks them as on /chat/completions.
CHAT_SAMPLING = ("stop", "seed", "top_k", "min_p", "presence_penalty", "frequency_penalty",
                 "repetition_penalty", "logit_bias", "min_tokens", "stop_token_ids",
                 "ignore_eos")  # fmt: skip
TEXT_VERBOSITY = (None, "medium")


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = True
    stream: bool | None = False
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None

    def ignored_fields(self) -> list[str]:
        known = (*UNIMPLEMENTED, *ACCEPTED, *CHAT_SAMPLING, "prompt_cache_options")
        return sorted(set(self.model_extra or {}) - set(known))

    def extra(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)

    def check(self) -> None:
        for name, defaults in UNIMPLEMENTED.items():
            value = self.extra(name)
            if value is not None and value not in defaults:
                raise Unsupported(f"{name} is not supported by this server", param=name)
        check_include(self.include)
        cache = self.extra("prompt_cache_options")
        if isinstance(cache, dict) and cache.get("prewarm"):
            raise Unsupported(
                "prompt_cache_options.prewarm is not supported by this server (it would "
                "answer without generating)",
                param="prompt_cache_options",
            )
        if self.text and self.text.get("verbosity") not in TEXT_VERBOSITY:
            raise Unsupported(
                "text.verbosity is not supported by this server (only 'medium')", param="text"
            )
        if self.reasoning and any(v is not None for v in self.reasoning.values()):
            raise Unsupported(
                "reasoning options are not supported by this server", param="reasoning"
            )
        if self.metadata is not None and len(self.metadata) > 16:
            raise InvalidInput("metadata may hold at most 16 keys", param="metadata")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise InvalidInput(
                f"max_output_tokens must be at least 1, got {self.max_output_tokens}",
                param="max_output_tokens",
            )

    def to_chat(self, history: list[dict[str, Any]]) -> tuple[ChatCompletionRequest, int]:
        """The chat request for this turn after `history` (a stored conversation), and how
        many of its messages are the system instructions (left out of what is stored)."""
        self.check()
        system = [{"role": "system", "content": self.instructions}] if self.instructions else []
        new = input_messages(self.input) if self.input or not history else []
        messages = system + history + new
        tools = None if self.tools is None else [_tool(i, t) for i, t in enumerate(self.tools)]
        sampling = {k: self.extra(k) for k in CHAT_SAMPLING if self.extra(k) is not None}
        try:
            chat = ChatCompletionRequest(
                model=self.model,
                messages=messages,
                max_tokens=self.max_output_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                tools=tools,
                tool_choice=_tool_choice(self.tool_choice),
                parallel_tool_calls=self.parallel_tool_calls,
                response_format=_response_format(self.text),
                stream=bool(self.stream),
                **sampling,
            )
        except ValidationError as exc:  # a sampling extension of the wrong type
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            param = str(err["loc"][0]) if err["loc"] else None
            raise InvalidInput(f"{field}: {err['msg']}", param=param) from None
        return chat, len(system)


class InputTokensRequest(ResponsesRequest):
    """POST /responses/input_tokens: a request's fields whose prompt is counted (`input` may be
    left out when `previous_response_id` carries the conversation)."""

    input: str | list[dict[str, Any]] = []  # type: ignore[assignment]
    store: bool | None = False


def check_include(include: list[str] | None) -> None:
    """`include` asks for data of items this server never produces (tool results, images,
    logprobs, encrypted reasoning): every value is refused, naming it."""
    if include:
        raise Unsupported(
            f"include value {str(include[0])[:80]!r} is not supported by this server (it adds "
            "data this server does not produce)",
            param="include",
        )


def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as chat messages (consecutive function calls share one assistant turn)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not value:
        raise InvalidInput("input must not be empty", param="input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            call = _function_call(item, where)
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), _output_text(item.get("output"))
            if not isinstance(call_id, str) or output is None:
                raise InvalidInput(
                    f"{where}: function_call_output needs a call_id and an output "
                    "(a string or input_text parts)",
                    param="input",
                )
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # a reasoning item from an earlier turn: not part of the prompt
        else:
            raise InvalidInput(
                f"{where}: input item type {str(kind)[:40]!r} is not supported; supported: "
                "message, function_call, function_call_output",
                param="input",
            )
    return out


def _output_text(output: Any) -> str | None:
    """A function_call_output's `output`: a string, or text parts (joined)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(
        isinstance(p, dict) and p.get("type") in TEXT_PARTS and isinstance(p.get("text"), str)
        for p in output
    ):
        return "".join(p["text"] for p in output)
    return None


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise InvalidInput(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)}", param="input")
    content = item.get("content")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in TEXT_PARTS or not isinstance(part.get("text"), str):
                raise InvalidInput(
                    f"{where}.content[{j}]: content part type {str(kind)[:40]!r} is not "
                    "supported; this model takes input_text / output_text parts",
                    param="input",
                )
            texts.append(part["text"])
        content = "\n".join(texts)
    if not isinstance(content, str):
        raise InvalidInput(f"{where}.content must be a string or a list of parts", param="input")
    return {"role": "system" if role == "developer" else role, "content": content}


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not all(isinstance(v, str) and v for v in (call_id, name)) or not isinstance(arguments, str):
        raise InvalidInput(
            f"{where}: function_call needs call_id, name and arguments (a JSON string)",
            param="input",
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _tool(index: int, tool: dict[str, Any]) -> dict[str, Any]:
    kind = tool.get("type")
    if kind != "function":
        raise Unsupported(
            f"tools[{index}]: built-in tool {str(kind)[:60]!r} is not available on this server "
            "(web search, file search, computer use, code interpreter and the other hosted "
            "tools run on OpenAI's side); only function tools",
            param="tools",
        )
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise Unsupported(
        f"tool_choice type {str(kind)[:60]!r} is not supported here: use 'auto', 'none', "
        "'required' or {'type': 'function', 'name': ...}",
        param="tool_choice",
    )


def _response_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` as chat's response_format (checked there)."""
    if not text or text.get("format") is None:
        return None
    spec = text["format"]
    if not isinstance(spec, dict):
        raise InvalidInput("text.format must be an object", param="text")
    if spec.get("type") != "json_schema":
        return spec
    inner = {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec}
    return {"type": "json_schema", "json_schema": inner}
