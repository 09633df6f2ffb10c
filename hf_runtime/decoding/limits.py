"""Request limits every generation engine enforces, with the same messages on every backend."""

from __future__ import annotations

from hf_runtime.decoding.sampling import validate_sampling_params
from hf_runtime.errors import InvalidInput
from hf_runtime.types import GenerationRequest


def check_request(
    request: GenerationRequest,
    *,
    max_model_len: int,
    vocab_size: int,
    is_encoder_decoder: bool,
    input_vocab_size: int | None = None,
) -> int:
    """Validate a request; return its effective max_tokens (None: the rest of the context).

    Shared by every engine so all backends answer alike. `input_vocab_size` bounds prompt ids
    when the input embedding is larger or smaller than the output vocabulary.
    """
    prompt = request.prompt_token_ids
    if not prompt:
        raise InvalidInput("the prompt must contain at least one token", param="prompt")
    prompt_vocab = vocab_size if input_vocab_size is None else input_vocab_size
    bad = next((t for t in prompt if not 0 <= t < prompt_vocab), None)
    if bad is not None:
        raise InvalidInput(
            f"prompt token id {bad} is outside the vocabulary [0, {prompt_vocab})", param="prompt"
        )
    validate_sampling_params(request.params, vocab_size)
    limit, requested = max_model_len, request.params.max_tokens
    if is_encoder_decoder:
        if len(prompt) > limit:
            raise InvalidInput(
                f"This model's maximum input length is {limit} tokens. However, your prompt "
                f"has {len(prompt)} tokens. Please reduce the length of the prompt.",
                param="prompt",
            )
        if requested is not None and requested > limit:
            raise InvalidInput(
                f"max_tokens ({requested}) is greater than this model's maximum output length "
                f"of {limit} tokens.",
                param="max_tokens",
            )
        return limit if requested is None else requested
    if requested is None:
        if len(prompt) >= limit:
            raise InvalidInput(
                f"This model's maximum context length is {limit} tokens. However, your prompt "
                f"has {len(prompt)} tokens, which leaves no room for a completion.",
                param="prompt",
            )
        return limit - len(prompt)
    if len(prompt) + requested > limit:
        raise InvalidInput(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{len(prompt) + requested} tokens ({len(prompt)} in the messages, {requested} in "
            "the completion). Please reduce the length of the messages or completion.",
            param="max_tokens",
        )
    return requested
