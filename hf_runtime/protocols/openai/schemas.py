"""OpenAI request bodies: pydantic shapes plus explicit range checks.

Here: the fields every request has, the sampling fields completions and chat share, the
completions and embeddings bodies. Chat's body is in chat_schemas.py; the other endpoints'
are beside their handlers (pooling_schemas, scoring_schemas, tokenize_schemas, responses_api).

Pydantic checks types only (its errors become 400s naming the field, via the error table).
Ranges and cross-field rules are checked by each request's `check()` so the messages read like
OpenAI's and `param` names the field exactly. Unknown fields are allowed (clients send many) and
logged by the handlers, as vLLM does.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictInt

from hf_runtime.errors import InvalidInput, Unsupported

MAX_N = 16  # choices per prompt
MAX_PROMPTS = 256  # prompts in one completions request
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own cap
MAX_LOGPROBS = 20
MAX_STOP_SEQUENCES = 4
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch generators accept
# ASCII digits (\d matches other scripts' too), few enough to stay clear of int()'s limits.
_TOKEN_ID = re.compile(r"[0-9]{1,10}")


def _in_range(value: float, low: float, high: float) -> bool:
    # Written so NaN (which Python's json accepts) fails every range.
    return not math.isnan(value) and low <= value <= high


class OpenAIRequest(BaseModel):
    """Fields every OpenAI request has. Unknown fields are kept in `model_extra`."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str | None = None
    user: str | None = None

    def ignored_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = False


class SamplingFields(OpenAIRequest):
    """Decoding fields shared by completions and chat (OpenAI's plus vLLM's common extras)."""

    n: int | None = 1
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # vLLM extensions, honoured because SamplingParams has them.
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = False
    min_tokens: int | None = None
    # json_object / json_schema: checked and turned into a grammar by structured.py.
    response_format: dict[str, Any] | None = None
    # vLLM's constraints (choice, regex, grammar, json, ...): structured_outputs.py.
    structured_outputs: dict[str, Any] | None = None

    @property
    def choices_per_prompt(self) -> int:
        return 1 if self.n is None else self.n

    @property
    def include_usage_in_stream(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_logit_bias(self) -> dict[int, float]:
        return {int(key): value for key, value in (self.logit_bias or {}).items()}

    def check_sampling(self, max_tokens: int | None, max_tokens_param: str) -> None:
        if not 1 <= self.choices_per_prompt <= MAX_N:
            raise InvalidInput(f"n must be between 1 and {MAX_N}, got {self.n}", param="n")
        if self.temperature is not None and not _in_range(self.temperature, 0.0, 2.0):
            raise InvalidInput(
                f"temperature must be between 0 and 2, got {self.temperature}", param="temperature"
            )
        if self.top_p is not None and not (_in_range(self.top_p, 0.0, 1.0) and self.top_p > 0):
            raise InvalidInput(f"top_p must be in (0, 1], got {self.top_p}", param="top_p")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None and not _in_range(value, -2.0, 2.0):
                raise InvalidInput(f"{name} must be between -2 and 2, got {value}", param=name)
        if max_tokens is not None and max_tokens < 1:
            raise InvalidInput(
                f"{max_tokens_param} must be at least 1, got {max_tokens}", param=max_tokens_param
            )
        self._check_stop()
        self._check_logit_bias()
        if self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX:
            raise InvalidInput("seed must fit in a 64-bit integer", param="seed")
        if self.stream_options is not None and not self.stream:
            raise InvalidInput(
                "stream_options can only be given when stream is true", param="stream_options"
            )
        self._check_extensions(max_tokens)
        check_unimplemented(self)

    def _check_stop(self) -> None:
        stops = self.stop_strings()
        if len(stops) > MAX_STOP_SEQUENCES:
            raise InvalidInput(
                f"stop may hold at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}",
                param="stop",
            )
        if any(s == "" for s in stops):
            raise InvalidInput("stop sequences must be non-empty strings", param="stop")

    def _check_logit_bias(self) -> None:
        for key, value in (self.logit_bias or {}).items():
            if not _TOKEN_ID.fullmatch(key):
                raise InvalidInput(
                    "logit_bias keys must be token ids (integers as strings), got "
                    + reprlib.repr(key),
                    param="logit_bias",
                )
            if not _in_range(value, -100.0, 100.0):
                raise InvalidInput(
                    f"logit_bias values must be between -100 and 100, got {value} for token {key}",
                    param="logit_bias",
                )

    def _check_extensions(self, max_tokens: int | None) -> None:
        if self.top_k is not None and self.top_k < -1:
            raise InvalidInput(
                f"top_k must be -1 or 0 (disabled) or a positive integer, got {self.top_k}",
                param="top_k",
            )
        if self.min_p is not None and not _in_range(self.min_p, 0.0, 1.0):
            raise InvalidInput(f"min_p must be between 0 and 1, got {self.min_p}", param="min_p")
        rp = self.repetition_penalty
        if rp is not None and not (math.isfinite(rp) and rp > 0):
            raise InvalidInput(
                f"repetition_penalty must be greater than 0, got {rp}", param="repetition_penalty"
            )
        if any(t < 0 for t in self.stop_token_ids or []):
            raise InvalidInput("stop_token_ids must be non-negative", param="stop_token_ids")
        if self.min_tokens is not None:
            if self.min_tokens < 0:
                raise InvalidInput("min_tokens must be non-negative", param="min_tokens")
            if max_tokens is not None and self.min_tokens > max_tokens:
                raise InvalidInput(
                    f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({max_tokens})",
                    param="min_tokens",
                )


# Fields OpenAI or vLLM define that would change the output and that this server does not
# implement: a 400 naming the field, never silently dropped (other unknown fields are logged
# and ignored, as vLLM does). name -> (values that change nothing, the hint).
_USE_STRUCTURED = "use structured_outputs (vLLM's current field) instead"
UNIMPLEMENTED_FIELDS: dict[str, tuple[tuple[Any, ...], str]] = {
    "guided_json": ((), _USE_STRUCTURED),
    "guided_regex": ((), _USE_STRUCTURED),
    "guided_choice": ((), _USE_STRUCTURED),
    "guided_grammar": ((), _USE_STRUCTURED),
    "guided_json_object": ((False,), _USE_STRUCTURED),
    "guided_decoding_backend": ((), _USE_STRUCTURED),
    "guided_whitespace_pattern": ((), _USE_STRUCTURED),
    "functions": ((), "use tools instead"),
    "function_call": ((), "use tool_choice instead"),
    "use_beam_search": ((False,), "beam search is not implemented"),
    "length_penalty": ((1, 1.0), "beam search is not implemented"),
    "include_stop_str_in_output": ((False,), "stop strings are always left out"),
    "skip_special_tokens": ((True,), "special tokens are always skipped"),
    "spaces_between_special_tokens": ((True,), "special tokens are always skipped"),
    "truncate_prompt_tokens": ((), "prompts are never truncated"),
    "prompt_logprobs": ((), "prompt logprobs are not implemented"),
    "allowed_token_ids": ((), "use logit_bias instead"),
    "bad_words": (([],), "use logit_bias instead"),
    "logits_processors": ((), "custom logits processors are not implemented"),
    "return_tokens_as_token_ids": ((False,), "tokens are returned as text"),
    "vllm_xargs": ((), "engine extension arguments are not implemented"),
    "audio": ((), "this server produces text only"),
    "modalities": ((["text"],), "this server produces text only"),
    "prediction": ((), "predicted outputs are not implemented"),
    "reasoning_effort": ((), "this server has no reasoning effort setting"),
    "verbosity": ((), "this server has no verbosity setting"),
    "web_search_options": ((), "web search is not available"),
    "echo": ((False,), "chat completions do not echo the prompt"),
}


def check_unimplemented(request: OpenAIRequest) -> None:
    """Unsupported (400, naming the field) for an unimplemented field that changes the output."""
    for name, value in (request.model_extra or {}).items():
        entry = UNIMPLEMENTED_FIELDS.get(name)
        if entry is None or value is None or value in entry[0]:
            continue
        raise Unsupported(f"{name} is not supported by this server: {entry[1]}", param=name)


# ---------------------------------------------------------------- completions

Prompt = str | list[str] | list[StrictInt] | list[list[StrictInt]]


class CompletionRequest(SamplingFields):
    prompt: Prompt | None = None
    max_tokens: int | None = None  # None: the rest of the context (the engine decides)
    echo: bool | None = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None

    def check(self) -> None:
        self.check_sampling(self.max_tokens, "max_tokens")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise InvalidInput(
                f"logprobs must be between 0 and {MAX_LOGPROBS}, got {self.logprobs}",
                param="logprobs",
            )
        if self.suffix:
            raise Unsupported("suffix is not supported", param="suffix")
        if self.best_of is not None and self.best_of != self.choices_per_prompt:
            raise Unsupported(
                f"best_of ({self.best_of}) different from n ({self.choices_per_prompt}) is not "
                "supported",
                param="best_of",
            )
        if self.prompt is None:
            raise InvalidInput("prompt is required", param="prompt")

    def prompt_batch(self) -> list[str | list[int]]:
        """The prompts as a batch: each a text or a list of token ids. Raises on empty input."""
        prompt = self.prompt
        batch: list[str | list[int]]
        if isinstance(prompt, str):
            batch = [prompt]
        elif not prompt:
            raise InvalidInput("prompt must not be an empty list", param="prompt")
        elif isinstance(prompt[0], int):
            batch = [list(prompt)]  # type: ignore[arg-type]  # one prompt of token ids
        else:
            batch = list(prompt)  # type: ignore[arg-type]  # list[str] or list[list[int]]
        if len(batch) > MAX_PROMPTS:
            raise InvalidInput(f"at most {MAX_PROMPTS} prompts per request", param="prompt")
        for item in batch:
            if isinstance(item, list):
                if not item:
                    raise InvalidInput("token prompts must not be empty", param="prompt")
                if any(t < 0 for t in item):
                    raise InvalidInput("token ids must be non-negative", param="prompt")
        return batch


# ---------------------------------------------------------------- embeddings

EmbeddingInput = str | list[str] | list[StrictInt] | list[list[StrictInt]]
# "sparse" (ours, opt-in): a sparse embedding model's vectors as {"indices", "values"}.
SPARSE_ENCODING = "sparse"
ENCODING_FORMATS = ("float", "base64", SPARSE_ENCODING)


class EmbeddingRequest(OpenAIRequest):
    input: EmbeddingInput
    encoding_format: str | None = "float"
    dimensions: int | None = None
    # TEI's: one of the model's sentence-transformers prompts (None: its default prompt)
    prompt_name: str | None = None
    # vLLM's: keep at most N tokens of each input (-1: the model's maximum), cut from
    # `truncation_side` (alone: the side over-long inputs are cut from, as TEI's direction)
    truncate_prompt_tokens: int | None = None
    truncation_side: Literal["left", "right"] | None = None

    def check(self) -> None:
        tokens = self.truncate_prompt_tokens
        if tokens is not None and not (tokens == -1 or tokens >= 1):
            raise InvalidInput(
                "truncate_prompt_tokens must be -1 (the model's maximum) or at least 1, got "
                f"{tokens}",
                param="truncate_prompt_tokens",
            )
        if self.encoding_format == SPARSE_ENCODING and tokens is not None:
            raise InvalidInput(
                "truncate_prompt_tokens does not apply to sparse embeddings; truncation_side does",
                param="truncate_prompt_tokens",
            )
        if self.encoding_format not in (None, *ENCODING_FORMATS):
            raise InvalidInput(
                "encoding_format must be 'float' or 'base64' ('sparse' for a sparse "
                f"embedding model), got {self.encoding_format!r}",
                param="encoding_format",
            )
        if self.encoding_format == SPARSE_ENCODING and self.dimensions is not None:
            raise InvalidInput("dimensions does not apply to sparse embeddings", param="dimensions")
        if self.dimensions is not None and self.dimensions < 1:
            raise InvalidInput(
                f"dimensions must be at least 1, got {self.dimensions}", param="dimensions"
            )

    def input_batch(self) -> list[str] | list[list[int]]:
        value = self.input
        if isinstance(value, str):
            batch: list[Any] = [value]
        elif not value:
            raise InvalidInput("input must not be empty", param="input")
        elif isinstance(value[0], int):
            batch = [list(value)]
        else:
            batch = list(value)
        if len(batch) > MAX_EMBEDDING_INPUTS:
            raise InvalidInput(
                f"at most {MAX_EMBEDDING_INPUTS} inputs per request, got {len(batch)}",
                param="input",
            )
        for item in batch:
            if len(item) == 0:
                raise InvalidInput("input items must not be empty", param="input")
            if isinstance(item, list) and any(t < 0 for t in item):
                raise InvalidInput("token ids must be non-negative", param="input")
        return batch
