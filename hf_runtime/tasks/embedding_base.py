"""What every embedding task shares: the checkpoint's prompts and OpenAI's `input` forms.

`EmbeddingProcessor` is the base of the dense (`text_embedding`) and sparse
(`sparse_embedding`) processors: a sentence-transformers checkpoint's prompts are prepended as
`encode` does (the default one unless a request names another; an unknown name is a 400), and
OpenAI's `input` (a string, strings, token ids or token-id lists) is checked against the
vocabulary and the model's length. Each subclass says how its vectors are served
(`embedding_result`) and which `dimensions` it takes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hf_runtime.backends import EncoderBackend, Encoding
from hf_runtime.errors import ConfigError, InvalidInput
from hf_runtime.tasks.base import EncoderTaskProcessor, ProcessorOptions, too_long
from hf_runtime.types import EmbeddingResult


class EmbeddingProcessor(EncoderTaskProcessor):
    """Prompts and OpenAI inputs; `embedding_result` and `check_dimensions` are the task's."""

    def __init__(
        self,
        backend: EncoderBackend,
        options: ProcessorOptions,
        prompts: Mapping[str, str],
        default_prompt_name: str | None,
    ) -> None:
        """ConfigError when the configured default prompt is not one of the checkpoint's."""
        super().__init__(backend, options)
        self.prompts = dict(prompts)
        self.default_prompt = self._default_prompt(default_prompt_name)

    def _default_prompt(self, checkpoint_default: str | None) -> str | None:
        options = self.options
        if options.default_prompt is not None:
            return options.default_prompt or None
        name = options.default_prompt_name or checkpoint_default
        if name is None:
            return None
        if name not in self.prompts:
            raise ConfigError(
                f"default_prompt_name {name!r} is not one of the checkpoint's prompts "
                f"({', '.join(self.prompts) or 'it has none'})"
            )
        return self.prompts[name] or None

    # ------------------------------------------------------------------ prompts

    def prompt(self, options: ProcessorOptions | None = None) -> str | None:
        """The prompt a request gets: the one it names, else the model's default. An unknown
        name is InvalidInput (the protocols' 400)."""
        name = (options or self.options).prompt_name
        if name is None:
            return self.default_prompt
        if name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise InvalidInput(
                f"prompt_name {name!r} is not one of this model's prompts ({known})",
                param="prompt_name",
            )
        return self.prompts[name] or None

    def with_prompt(
        self, texts: Sequence[str], options: ProcessorOptions | None = None
    ) -> list[str]:
        prompt = self.prompt(options)
        return [prompt + text for text in texts] if prompt else list(texts)

    def decode_instances(
        self, instances: Any, options: ProcessorOptions | None = None
    ) -> list[str]:
        return self.with_prompt(super().decode_instances(instances), options)

    def check_token_input_prompt(self, options: ProcessorOptions | None) -> None:
        """Token-id inputs are embedded as given, without a prompt: naming one is an error."""
        if options is not None and options.prompt_name is not None:
            raise InvalidInput(
                "prompt_name applies to text inputs; token-id inputs are embedded as given",
                param="prompt_name",
            )

    # ------------------------------------------------------------------ OpenAI inputs

    def decode_embedding_inputs(
        self, inputs: Any, *, auto_truncate: bool = True
    ) -> list[str] | list[list[int]]:
        """OpenAI `input`: a string, a list of strings, a token list or a list of token lists.

        Returns the texts, or the token lists (validated against the vocabulary and length).
        Token lists are never cut: one over the maximum length is InvalidInput, or TooLarge
        when the model is configured with `auto_truncate: false` (as its texts would be).
        """
        if isinstance(inputs, str):
            return [inputs]
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InvalidInput(
                "input must be a non-empty string, list of strings or list of token ids",
                param="input",
            )
        if all(isinstance(x, str) for x in inputs):
            return list(inputs)
        if all(is_token_id(x) for x in inputs):
            return [self._checked_ids(inputs, 0, auto_truncate)]
        if all(isinstance(x, (list, tuple)) for x in inputs):
            return [self._checked_ids(ids, i, auto_truncate) for i, ids in enumerate(inputs)]
        raise InvalidInput(
            "input must be all strings or all token-id lists, not a mix", param="input"
        )

    def _checked_ids(self, ids: Sequence[Any], index: int, auto_truncate: bool) -> list[int]:
        if not ids:
            raise InvalidInput(f"input {index} is an empty token list", param="input")
        vocab = self.backend.vocab_size
        for token in ids:
            if not is_token_id(token) or not 0 <= token < vocab:
                raise InvalidInput(
                    f"input {index}: {token!r} is not a token id of this model "
                    f"(integers 0..{vocab - 1})",
                    param="input",
                )
        if len(ids) > self.backend.max_length:
            if not auto_truncate:
                raise too_long(index, len(ids), self.backend.max_length, "input")
            raise InvalidInput(
                f"input {index} has {len(ids)} tokens; this model takes at most "
                f"{self.backend.max_length}",
                param="input",
            )
        return [int(t) for t in ids]

    # ------------------------------------------------------------------ the task's vectors

    @abstractmethod
    def check_dimensions(self, dimensions: int | None) -> None:
        """InvalidInput for a `dimensions` this model cannot serve."""

    @abstractmethod
    def vectors(
        self, outputs: Sequence[Any], dimensions: int | None, normalize: bool | None = None
    ) -> list[np.ndarray]:
        """The served dense vectors of the backend's `outputs` (`normalize` None: the model's
        default)."""

    def embedding_result(
        self,
        encodings: Sequence[Encoding],
        outputs: Sequence[Any],
        dimensions: int | None,
        normalize: bool | None = None,
    ) -> EmbeddingResult:
        """The served vectors (see `vectors`) and the token count (special tokens and the
        prompt included, padding not)."""
        vectors = [vector.tolist() for vector in self.vectors(outputs, dimensions, normalize)]
        return EmbeddingResult(vectors, prompt_tokens=sum(len(e) for e in encodings))


def is_token_id(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
