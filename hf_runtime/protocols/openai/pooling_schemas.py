"""vLLM's pooling API bodies: POST /classify and POST /pooling, as vLLM 0.32 declares them.

vLLM declares each request twice, a completion shape (`input`) and a chat shape (`messages`,
rendered by the model's chat template); here one model holds both, like /tokenize's, and
`check()` demands exactly one. vLLM's fields that this server cannot honour are a 400 naming
the field (never silently ignored): `messages` (an encoder has no chat template),
`padding: max_length`, `mm_processor_kwargs`, a non-zero `priority` (no priority
scheduling, as vLLM says without it), /pooling's `dimensions` (vLLM 0.32 refuses it too),
`encoding_format` bytes / bytes_only, fp8 `embed_dtype`s and IOProcessor plugin requests.
Fields vLLM does not declare are ignored and logged, as vLLM does. Responses are declared for
the OpenAPI documents (tests check them against vLLM's own models); the handlers build them
as plain dicts.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols.openai.schemas import OpenAIRequest
from hf_runtime.types import PoolingOptions

PoolingInput = StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
# vLLM's PoolingTask values, and the removed names it explains (vllm.tasks).
VLLM_POOLING_TASKS = (
    "embed",
    "classify",
    "token_embed",
    "token_classify",
    "plugin",
    "embed&token_classify",
)
REMOVED_TASKS = {
    "score": "`score` task was removed; use `classify` instead.",
    "encode": "`encode` task was removed; use `token_embed` or `token_classify` instead.",
}
EMBED_DTYPES = ("float32", "float16", "bfloat16")  # served; vLLM's fp8 ones are refused


class PoolingBaseRequest(OpenAIRequest):
    """The fields /classify and /pooling share (vLLM's PoolingBasicRequestMixin, its
    completion and chat mixins and ClassifyRequestMixin)."""

    input: PoolingInput | None = None
    messages: list[dict[str, Any]] | None = None
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)
    truncation_side: Literal["left", "right"] | None = None
    padding: Literal["max_length", "do_not_pad"] | None = None
    request_id: str | None = None
    priority: int = 0
    mm_processor_kwargs: dict[str, Any] | None = None
    cache_salt: str | None = Field(default=None, min_length=1, max_length=1024)
    # None: vLLM's default for the shape (true for input; false for messages).
    add_special_tokens: bool | None = None
    use_activation: bool | None = None
    # The chat shape's options (accepted with it; messages themselves are refused).
    add_generation_prompt: bool = False
    continue_final_message: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    media_io_kwargs: dict[str, dict[str, Any]] | None = None

    def check(self) -> None:
        extra = self.model_extra or {}
        if "normalize" in extra:
            raise InvalidInput(
                "Parameter `normalize` was removed; use `use_activation` instead.",
                param="normalize",
            )
        if self.messages is not None and self.input is not None:
            raise InvalidInput("give input or messages, not both", param="messages")
        if self.messages is not None:
            raise InvalidInput(
                "messages (a chat rendered by the model's chat template) are not served for "
                "pooling models here, which have no chat template: send the text as input",
                param="messages",
            )
        if self.input is None:
            raise InvalidInput("input (a text, texts or token ids) is required", param="input")
        if self.padding == "max_length":
            raise InvalidInput(
                "padding 'max_length' is not supported; leave padding unset or 'do_not_pad'",
                param="padding",
            )
        if self.mm_processor_kwargs is not None:
            raise InvalidInput(
                "mm_processor_kwargs is not supported: the served models take text only",
                param="mm_processor_kwargs",
            )
        if self.priority != 0:
            raise InvalidInput(
                f"Got priority {self.priority} but Priority scheduling is not enabled.",
                param="priority",
            )

    def pooling_options(self) -> PoolingOptions:
        return PoolingOptions(
            activation=self.use_activation is not False,
            truncate_tokens=self.truncate_prompt_tokens,
            truncation_side=self.truncation_side,
            add_special_tokens=self.add_special_tokens is not False,
        )


class ClassificationRequest(PoolingBaseRequest):
    """`{"model"?, "input"}`: class probabilities per text (or token-id list)."""


class PoolingRequest(PoolingBaseRequest):
    """`{"model"?, "input", "task"?, "encoding_format"?}`: the model's raw pooled output."""

    task: str | None = None
    encoding_format: Literal["float", "base64", "bytes", "bytes_only"] = "float"
    embed_dtype: Literal["float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2"] = "float32"
    endianness: Literal["native", "big", "little"] = "native"
    dimensions: int | None = None

    def check(self) -> None:
        if self.input is None and self.messages is None and "data" in (self.model_extra or {}):
            # vLLM reads such a body as an IOProcessor plugin's request.
            raise InvalidInput(
                "No IOProcessor plugin installed: requests with `data` (task plugin) are not "
                "served; send input",
                param="task",
            )
        if self.task in REMOVED_TASKS:
            raise InvalidInput(REMOVED_TASKS[self.task], param="task")
        super().check()
        if self.task is not None and self.task not in VLLM_POOLING_TASKS:
            raise InvalidInput(
                f"task must be one of {', '.join(VLLM_POOLING_TASKS)}, got {self.task!r}",
                param="task",
            )
        if self.dimensions is not None:
            raise InvalidInput("dimensions is currently not supported", param="dimensions")
        if self.encoding_format in ("bytes", "bytes_only"):
            raise InvalidInput(
                f"encoding_format {self.encoding_format!r} (a binary response) is not "
                "supported; use 'float' or 'base64'",
                param="encoding_format",
            )
        if self.embed_dtype not in EMBED_DTYPES:
            raise InvalidInput(
                f"embed_dtype {self.embed_dtype!r} is not supported; use one of "
                f"{', '.join(EMBED_DTYPES)}",
                param="embed_dtype",
            )

    @property
    def byte_order(self) -> str:
        """The byte order `endianness` names, "little" or "big" ("native": this machine's)."""
        return sys.byteorder if self.endianness == "native" else self.endianness


# ---------------------------------------------------------------- responses (documented)


class PoolingUsage(BaseModel):
    """vLLM's UsageInfo, as its pooling responses dump it."""

    prompt_tokens: int
    total_tokens: int
    completion_tokens: int | None = 0
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ClassificationData(BaseModel):
    index: int
    label: str | None
    probs: list[float]
    num_classes: int


class ClassificationResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ClassificationData]
    usage: PoolingUsage


class PoolingResponseData(BaseModel):
    index: int
    object: str = "pooling"
    data: list[list[float]] | list[float] | str


class PoolingResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[PoolingResponseData]
    usage: PoolingUsage
