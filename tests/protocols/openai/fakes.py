"""Fakes for the OpenAI layer: a deterministic engine that records what it was asked and what
was aborted, plus ServedModel/registry stand-ins.

Vocabulary of `ScriptedGenerator`:
  - ids below 0x110000 are characters (`tokenize` is one id per character, plus BOS);
  - BOS_ID / EOS_ID are special (detokenised to "");
  - WORD_BASE + k is the word WORDS[k] (with its leading space): what the "model" generates.
A reply is REPLY_LENGTH words then EOS. Greedy (temperature 0) starts at WORDS[0]; sampling with
a seed starts at WORDS[seed % len(WORDS)], so distinct seeds give distinct, repeatable replies.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

from hf_runtime.errors import (
    HFRuntimeError,
    InvalidInput,
    ModelNotReady,
    Overloaded,
)
from hf_runtime.model import Embedder, TextGenerator
from hf_runtime.types import (
    EmbeddingResult,
    GenerationDelta,
    GenerationRequest,
    ModelMetadata,
    ModelState,
    ModelStatus,
    TokenLogprob,
    Truncation,
)

BOS_ID = 0x110000
EOS_ID = 0x110001
WORD_BASE = 0x110100
WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta", " iota"]
REPLY_LENGTH = 6
EMBEDDING_DIM = 8


def word_id(word: str) -> int:
    return WORD_BASE + WORDS.index(word)


def reply_words(seed: int | None = None, temperature: float = 0.0) -> list[str]:
    """The words the fake generates for these sampling settings (before EOS)."""
    start = 0 if temperature == 0 or seed is None else seed % len(WORDS)
    return [WORDS[(start + k) % len(WORDS)] for k in range(REPLY_LENGTH)]


def piece(token_id: int) -> str:
    if token_id >= WORD_BASE:
        return WORDS[token_id - WORD_BASE]
    if token_id in (BOS_ID, EOS_ID):
        return ""
    return chr(token_id)


def token_logprob(position: int) -> float:
    """The fake's logprob of the token it generates at `position` (0-based)."""
    return -0.125 * (position + 1)


class ScriptedGenerator:
    """A TextGenerator with scripted output, honouring max_tokens, stop strings (removed from
    the output, held back while they may still match), stop_token_ids, EOS, min_tokens,
    ignore_eos and logprobs, like a real engine. Test knobs:

    - `token_delay`: seconds per token (to stream slowly and test disconnects);
    - `max_active`: more concurrent sequences than this raise Overloaded on admission;
    - `fail_after`: raise RuntimeError after that many tokens (a mid-stream engine failure);
    - `allow_request_template`: whether `chat_template` from requests is accepted;
    - `scripts` / `script_chunk`: given texts to emit instead (tool calls, JSON), and
      `tool_call_parser`: what the model's configuration names.
    Records: `requests` (every GenerationRequest), `aborted` / `finished` (request ids),
    `chat_calls` (render_chat keyword arguments).
    """

    def __init__(
        self,
        *,
        max_model_len: int = 512,
        token_delay: float = 0.0,
        max_active: int | None = None,
        fail_after: int | None = None,
        allow_request_template: bool = False,
    ) -> None:
        self._max_model_len = max_model_len
        self.token_delay = token_delay
        self.max_active = max_active
        self.fail_after = fail_after
        self.allow_request_template = allow_request_template
        self.requests: list[GenerationRequest] = []
        self.aborted: list[str] = []
        self.finished: list[str] = []
        self.chat_calls: list[dict[str, Any]] = []
        self.active = 0
        self.sampling_defaults: dict[str, float | int] = {}  # generation_config.json's
        self.tool_call_parser: str | None = None  # generation.tool_call_parser
        self.reasoning_parser: str | None = None  # generation.reasoning_parser
        # Scripted replies: choice i emits scripts[i % len(scripts)], `script_chunk`
        # characters per token, then EOS (max_tokens still cuts it: "length"; stop strings
        # are not applied). None: the WORDS reply.
        self.scripts: list[str] | None = None
        self.script_chunk = 3

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def is_encoder_decoder(self) -> bool:
        return False

    async def tokenize(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [ord(c) for c in text]
        return [BOS_ID, *ids] if add_special_tokens else ids

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        return "".join(piece(t) for t in token_ids)

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
        self.chat_calls.append(
            {
                "messages": messages,
                "chat_template": chat_template,
                "add_generation_prompt": add_generation_prompt,
                "continue_final_message": continue_final_message,
                "tools": tools,
                "chat_template_kwargs": chat_template_kwargs,
            }
        )
        if chat_template is not None and not self.allow_request_template:
            raise InvalidInput(
                "chat_template from requests is not allowed by this server",
                param="chat_template",
            )
        prefix = chat_template or ""
        text = prefix + "".join(f"<{m['role']}>{m.get('content') or ''}\n" for m in messages)
        if add_generation_prompt:
            text += "<assistant>"
        return await self.tokenize(text, add_special_tokens=False)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        self.requests.append(request)
        params = request.params
        prompt_len = len(request.prompt_token_ids)
        room = self._max_model_len - prompt_len
        if params.max_tokens is not None and params.max_tokens > room:
            raise InvalidInput(
                f"This model's maximum context length is {self._max_model_len} tokens. However, "
                f"you requested {prompt_len + params.max_tokens} tokens ({prompt_len} in the "
                f"prompt, {params.max_tokens} in the completion).",
                param="max_tokens",
            )
        if self.max_active is not None and self.active >= self.max_active:
            raise Overloaded("too many sequences in flight")
        max_tokens = room if params.max_tokens is None else params.max_tokens
        self.active += 1
        done = False
        deltas = (
            self._deltas(request.params, prompt_len, max_tokens)
            if self.scripts is None
            else self._scripted(request, prompt_len, max_tokens)
        )
        try:
            async for delta in deltas:
                done = delta.finish_reason is not None
                yield delta
        finally:
            self.active -= 1
            (self.finished if done else self.aborted).append(request.request_id)

    async def _deltas(
        self, params: Any, prompt_len: int, max_tokens: int
    ) -> AsyncIterator[GenerationDelta]:
        words = reply_words(params.seed, params.temperature)
        if params.seed is None and params.temperature > 0:
            words = reply_words(random.randrange(len(WORDS)), params.temperature)
        text, sent = "", 0
        for step in range(max_tokens):
            await asyncio.sleep(self.token_delay)
            if self.fail_after is not None and step >= self.fail_after:
                raise RuntimeError("the fake engine failed")
            at_end = step >= len(words) and not params.ignore_eos and step >= params.min_tokens
            token = EOS_ID if at_end else word_id(words[step % len(words)])
            first = step == 0
            extra = {
                "token_ids": [token],
                "logprobs": self._logprobs(token, step, params.logprobs),
                "prompt_tokens": prompt_len if first else 0,
            }
            if token == EOS_ID or token in params.stop_token_ids:
                reason = token if token != EOS_ID else None
                yield GenerationDelta(
                    text[sent:], finish_reason="stop", stop_reason=reason, **extra
                )
                return
            text += piece(token)
            hit = _earliest_stop(text, params.stop)
            if hit is not None:
                index, stop = hit
                yield GenerationDelta(
                    text[sent:index], finish_reason="stop", stop_reason=stop, **extra
                )
                return
            if step + 1 >= max_tokens:
                yield GenerationDelta(text[sent:], finish_reason="length", **extra)
                return
            ready = max(sent, len(text) - _held_back(text, params.stop))
            yield GenerationDelta(text[sent:ready], **extra)
            sent = ready

    async def _scripted(
        self, request: GenerationRequest, prompt_len: int, max_tokens: int
    ) -> AsyncIterator[GenerationDelta]:
        assert self.scripts is not None
        choice = int(request.request_id.rsplit("-", 1)[1])  # fan_out's "<id>-<index>"
        script = self.scripts[choice % len(self.scripts)]
        size = self.script_chunk
        pieces = [script[i : i + size] for i in range(0, len(script), size)]
        for step, text in enumerate([*pieces, ""]):
            await asyncio.sleep(self.token_delay)
            first = {"prompt_tokens": prompt_len} if step == 0 else {}
            if step == len(pieces):
                yield GenerationDelta("", [EOS_ID], finish_reason="stop", **first)
                return
            token = [ord(text[0])]
            if step + 1 >= max_tokens:
                yield GenerationDelta(text, token, finish_reason="length", **first)
                return
            yield GenerationDelta(text, token, **first)

    @staticmethod
    def _logprobs(token: int, step: int, k: int | None) -> list[TokenLogprob] | None:
        if k is None:
            return None
        own = token_logprob(step)
        alternatives = [w for w in WORDS if word_id(w) != token][:k]
        top = [(token, piece(token), own)] + [
            (word_id(w), w, own - 1.0 - i) for i, w in enumerate(alternatives)
        ]
        return [TokenLogprob(token, piece(token), own, top[:k])]


def _earliest_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    hits = [(text.find(s), s) for s in stops if s in text]
    return min(hits) if hits else None


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that begins some stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


class FakeModel:
    """A ServedModel: generative when given a generator, else an embedding model (or another
    encoder `task`). Set `ready` False to simulate loading; `fail_with` is raised by embed."""

    def __init__(
        self,
        name: str,
        task: str = "text_generation",
        *,
        generator: ScriptedGenerator | None = None,
        ready: bool = True,
        fail_with: HFRuntimeError | None = None,
    ) -> None:
        self._name = name
        self._task = task
        self._generator = generator
        self.ready = ready
        self.fail_with = fail_with
        self.embed_calls: list[tuple[list[Any], int | None]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def task(self) -> str:
        return self._task

    @property
    def backend(self) -> str:
        return "fake"

    def status(self) -> ModelStatus:
        return ModelStatus(ModelState.READY if self.ready else ModelState.LOADING)

    def capability(self, kind: type[Any]) -> Any:
        if not self.ready:
            raise ModelNotReady(self._name)
        if kind is TextGenerator:
            return self._generator
        if kind is Embedder and self._task == "text_embedding":
            return self
        return None

    def metadata(self) -> ModelMetadata:
        return ModelMetadata(self._name, self._task, "fake", [], [])

    def stats(self) -> dict[str, int]:
        return {}

    async def aclose(self) -> None:
        self.ready = False

    async def embed(
        self,
        inputs: Sequence[str] | Sequence[Sequence[int]],
        dimensions: int | None = None,
        prompt_name: str | None = None,
        *,
        truncation: Truncation | None = None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        """The Embedder interface; prompts, truncation and normalize are not modelled."""
        self.embed_calls.append((list(inputs), dimensions))
        if self.fail_with is not None:
            raise self.fail_with
        sequences = [[ord(c) for c in x] if isinstance(x, str) else list(x) for x in inputs]
        return EmbeddingResult(
            [fake_embedding(s, dimensions) for s in sequences], sum(len(s) + 2 for s in sequences)
        )


def fake_embedding(values: Sequence[int], dimensions: int | None = None) -> list[float]:
    """A unit vector from the values; like Matryoshka models, truncates then renormalises.
    Asking for more dimensions than it has silently returns all of them (to prove the API layer
    catches it)."""
    raw = [float((sum(values) * (i + 3)) % 89 + 1) for i in range(EMBEDDING_DIM)]
    raw = raw[:dimensions] if dimensions else raw
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]
