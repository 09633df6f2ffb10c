"""Generative models (text_generation, text2text_generation) as ServedModels, on any backend.

`GenerativeModel` is the ServedModel the protocols see, and its own TextGenerator and
TextTokenizer: tokenizing, chat templates and detokenizing run in worker threads, with the same
rules on every backend; generation goes to the backend's continuous-batching `GenerationEngine`,
with the model's default max_tokens (`sampling_defaults`: the configuration's, the checkpoint's
generation_config.json `max_new_tokens`, or `generation.default_max_tokens`) for a request that
gives none.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from hf_runtime.backends import GenerationEngine, LoRAEngine, token_spans
from hf_runtime.config import ModelConfig
from hf_runtime.errors import InvalidInput, Unsupported
from hf_runtime.reasoning import THINK_END, THINK_START
from hf_runtime.runtime.served_model import ServedModelBase
from hf_runtime.tasks.registry import Task
from hf_runtime.types import GenerationDelta, GenerationRequest, ModelMetadata, TokenSpan

logger = logging.getLogger("hf_runtime")


class GenerativeModel(ServedModelBase):
    """A loaded generative model on any backend: ServedModel + TextGenerator.

    `platform` is the backend's name. `adapters` are the LoRA adapters served under their own
    names on this model's engine (each a GenerativeModel over a view of the engine); closing
    this model closes them too.
    """

    def __init__(
        self,
        config: ModelConfig,
        task: Task,
        tokenizer: Any,
        engine: GenerationEngine,
        *,
        platform: str,
        chat_template: str | None = None,
        sampling_defaults: Mapping[str, float | int] | None = None,
    ) -> None:
        super().__init__(config, task, platform)
        self._tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()  # encode may mutate a fast tokenizer's state
        self.engine = engine
        self._chat_template = chat_template
        self._sampling_defaults = dict(sampling_defaults or {})
        self.adapters: tuple[GenerativeModel, ...] = ()
        self._ready = True
        _warn_if_thinking_is_skipped(config, tokenizer)

    def stats(self) -> dict[str, int]:
        """Engine counters for /metrics ({} for an adapter: its base model reports them)."""
        return dict(self.engine.stats())

    # ------------------------------------------------------------------ ServedModel

    @property
    def ready(self) -> bool:
        return self._ready and self.engine.ready

    def engine_failure(self) -> str | None:
        # getattr: an engine that cannot die (a test's) need not say so.
        return getattr(self.engine, "failure", None) if self._ready else None

    def metadata(self) -> ModelMetadata:
        # Generative models take no V2 tensors: they are served on the OpenAI routes only.
        return ModelMetadata(
            name=self.name, task=self.task, platform=self._platform, inputs=[], outputs=[]
        )

    # ------------------------------------------------------------------ runtime LoRA

    @property
    def takes_adapters(self) -> bool:
        """Whether LoRA adapters can be loaded onto this model while it serves."""
        return isinstance(self.engine, LoRAEngine) and self.engine.lora_enabled

    async def add_adapter(self, name: str, path: str) -> GenerativeModel:
        """The adapter at `path`, served as its own model `name` on this model's engine."""
        if not isinstance(self.engine, LoRAEngine):
            raise Unsupported(
                f"model {self.name} runs on the {self._platform} backend, which does not serve "
                "LoRA adapters: serve it with backend: vllm and vllm: {enable_lora: true}",
                param="lora_name",
            )
        engine = await self.engine.add_adapter(name, path)
        return GenerativeModel(
            self.config.model_copy(update={"model_name": name}),
            Task(self.task),
            self._tokenizer,
            engine,
            platform=self._platform,
            chat_template=self._chat_template,
            sampling_defaults=self._sampling_defaults,  # the base model's, as vLLM
        )

    async def remove_adapter(self, adapter: GenerativeModel) -> None:
        """Close an adapter of this model and drop it from the engine."""
        await adapter.aclose()
        if isinstance(self.engine, LoRAEngine):
            await self.engine.remove_adapter(adapter.engine)

    async def aclose(self) -> None:
        self._ready = False
        for adapter in self.adapters:
            await adapter.aclose()
        await self.engine.aclose()

    # ------------------------------------------------------------------ TextGenerator

    @property
    def max_model_len(self) -> int:
        return int(self.engine.max_model_len)

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.engine.is_encoder_decoder)

    @property
    def tool_call_parser(self) -> str | None:
        return self.config.generation.tool_call_parser

    @property
    def reasoning_parser(self) -> str | None:
        return self.config.generation.reasoning_parser

    @property
    def sampling_defaults(self) -> Mapping[str, float | int]:
        return dict(self._sampling_defaults)  # a copy: shared by every request

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return await asyncio.to_thread(self._encode, text, add_special_tokens)

    async def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return await asyncio.to_thread(self._decode_checked, list(token_ids), skip_special_tokens)

    async def token_spans(self, text: str, add_special_tokens: bool = True) -> list[TokenSpan]:
        return await asyncio.to_thread(self._token_spans, text, add_special_tokens)

    def _token_spans(self, text: str, add_special_tokens: bool) -> list[TokenSpan]:
        with self._tokenizer_lock:
            return token_spans(self._tokenizer, text, add_special_tokens)

    async def token_strings(self, token_ids: Sequence[int]) -> list[str]:
        return await asyncio.to_thread(self._token_strings, list(token_ids))

    async def render_chat(
        self,
        messages: list[dict[str, Any]],
        *,
        chat_template: str | None = None,
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> list[int]:
        """Messages -> prompt token ids through the chat template.

        Message `content` may be a string, None, or a list of parts `{"type": "text", "text":
        ...}` (joined with newlines, as vLLM and KServe do); other part types are rejected.
        Template choice: the request's `chat_template` (only if
        `generation.allow_request_chat_template`), else the `generation.chat_template` file,
        else the tokenizer's own template.
        """
        template = self._select_template(chat_template)
        normalised = [_normalise_message(i, m) for i, m in enumerate(messages)]
        return await asyncio.to_thread(
            self._render,
            normalised,
            template,
            add_generation_prompt,
            continue_final_message,
            tools,
            dict(chat_template_kwargs or {}),
        )

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        return self.engine.generate(self._with_default_max_tokens(request))

    def _with_default_max_tokens(self, request: GenerationRequest) -> GenerationRequest:
        """A request without max_tokens gets the model's default (`sampling_defaults`), capped
        by the room its prompt leaves (vLLM's `get_max_tokens`): a default must never make a
        request fail that would succeed without it. Never below the request's min_tokens."""
        default = self._sampling_defaults.get("max_tokens")
        params = request.params
        if default is None or params.max_tokens is not None:
            return request
        room = self.max_model_len
        if not self.is_encoder_decoder:
            room -= len(request.prompt_token_ids)
        if room < 1:
            return request  # no room at all: the engine refuses it with its usual message
        max_tokens = min(room, max(int(default), params.min_tokens))
        return replace(request, params=replace(params, max_tokens=max_tokens))

    # ------------------------------------------------------------------ helpers (threads)

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        with self._tokenizer_lock:
            return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def _decode(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        with self._tokenizer_lock:
            return str(self._tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens))

    def _decode_checked(self, token_ids: list[int], skip_special_tokens: bool = False) -> str:
        # Checked here, in the thread: a long id list takes a while to check.
        limit = self.engine.input_vocab_size
        bad = next((t for t in token_ids if not 0 <= t < limit), None)
        if bad is not None:
            raise InvalidInput(f"token id {bad} is outside the vocabulary [0, {limit})")
        return self._decode(token_ids, skip_special_tokens)

    def _token_strings(self, token_ids: list[int]) -> list[str]:
        with self._tokenizer_lock:
            tokens = self._tokenizer.convert_ids_to_tokens(token_ids)
        # An id past the tokenizer's own vocabulary (a padded embedding row) has no string.
        return ["" if token is None else str(token) for token in tokens]

    def _select_template(self, requested: str | None) -> str | None:
        if requested is not None:
            if not self.config.generation.allow_request_chat_template:
                raise InvalidInput(
                    "chat_template in the request is disabled on this server (set "
                    "generation.allow_request_chat_template to allow it)",
                    param="chat_template",
                )
            return requested
        if self._chat_template is not None:
            return self._chat_template
        if getattr(self._tokenizer, "chat_template", None):
            return None  # the tokenizer's own
        raise InvalidInput(
            f"Model {self.name} has no chat template: the tokenizer defines none and none is "
            "configured (generation.chat_template); use /v1/completions instead",
            param="messages",
        )

    def _render(
        self,
        messages: list[dict[str, Any]],
        template: str | None,
        add_generation_prompt: bool,
        continue_final_message: bool,
        tools: list[dict[str, Any]] | None,
        template_kwargs: dict[str, Any],
    ) -> list[int]:
        import jinja2  # transformers renders chat templates with jinja2

        if continue_final_message and add_generation_prompt:
            raise InvalidInput(
                "continue_final_message and add_generation_prompt cannot both be true",
                param="continue_final_message",
            )
        try:
            with self._tokenizer_lock:
                text = self._tokenizer.apply_chat_template(
                    messages,
                    chat_template=template,
                    tools=tools,
                    add_generation_prompt=add_generation_prompt,
                    continue_final_message=continue_final_message,
                    tokenize=False,
                    **template_kwargs,
                )
        except jinja2.TemplateSyntaxError as exc:
            raise InvalidInput(
                f"chat template is not valid Jinja: {exc}", param="chat_template"
            ) from None
        except (jinja2.TemplateError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidInput(
                f"chat template failed on these messages: {type(exc).__name__}: {exc}",
                param="messages",
            ) from None
        if not isinstance(text, str):
            raise InvalidInput("chat template did not render to text", param="chat_template")
        # The template writes the special tokens itself (BOS included): add none.
        return self._encode(text, add_special_tokens=False)


def _normalise_message(index: int, message: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(message, dict) or "role" not in message:
        raise InvalidInput(f"messages[{index}] must be an object with a role", param="messages")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return message
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidInput(
                    f"messages[{index}].content: part type {kind!r} is not supported by "
                    "this model (only text)",
                    param="messages",
                )
        return {**message, "content": "\n".join(texts)}
    raise InvalidInput(
        f"messages[{index}].content must be a string or a list of text parts", param="messages"
    )


def _warn_if_thinking_is_skipped(config: ModelConfig, tokenizer: Any) -> None:
    """Decoding skips special tokens: a tokenizer that marks the think tags special would hide
    them from the reasoning splitter (the real reasoning models keep them ordinary)."""
    if config.generation.reasoning_parser is None:
        return
    special = set(getattr(tokenizer, "all_special_tokens", None) or ())
    hidden = [tag for tag in (THINK_START, THINK_END) if tag in special]
    if hidden:
        logger.warning(
            "model %s: generation.reasoning_parser is set but its tokenizer marks %s as special "
            "tokens, which decoding skips: the thinking will not be split out",
            config.model_name, " and ".join(hidden),
        )  # fmt: skip
