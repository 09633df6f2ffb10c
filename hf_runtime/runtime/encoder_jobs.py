"""What the capability parts of `EncoderModel` (classification, scoring) use of their host:
its batcher, its task processor and its two job builders. One declaration for every part, so
the parts type-check against the same host."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hf_runtime.backends import Encoding
from hf_runtime.runtime.batcher import EncoderBatcher, EncoderJob
from hf_runtime.tasks.base import EncoderTaskProcessor
from hf_runtime.types import Truncation

# Turns a batch's encodings and model outputs into a job's result.
Finish = Callable[[list[Encoding], list[Any]], Any]


class EncoderJobHost:
    """The host's (EncoderModel's) attributes and jobs, declared for its capability parts."""

    batcher: EncoderBatcher
    processor: EncoderTaskProcessor

    if TYPE_CHECKING:  # defined by the host

        def _text_job(
            self,
            texts: Sequence[str],
            param: str,
            finish: Finish,
            prompt_length: int = 0,
            truncation: Truncation | None = None,
            token_states: bool = False,
        ) -> EncoderJob: ...

        def _pair_job(
            self,
            pairs: list[tuple[str, str]],
            truncation: Truncation | None = None,
            finish: Finish | None = None,
        ) -> EncoderJob: ...
