"""Rules about a model's tokenizer that every backend applies alike.

Both backends load the checkpoint's transformers tokenizer, so the limits and templates that
come with it must be read one way: otherwise the same model would take different inputs on
each backend. No heavy imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_runtime.errors import ConfigError

# Tokenizers report a huge sentinel (int(1e30)) when they know no limit.
_NO_TOKENIZER_LIMIT = 1_000_000


def encoder_max_length(position_limit: int, tokenizer: Any, configured: int | None) -> int:
    """The longest text (special tokens included) an encoder model takes.

    The model's position limit, unless max_model_len is not configured and the tokenizer
    declares fewer usable tokens: RoBERTa has 514 positions but takes 512 tokens (KServe
    would crash past 512). A configured max_model_len is the user's choice and stays.
    """
    tokenizer_limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if configured is None and 0 < tokenizer_limit < min(position_limit, _NO_TOKENIZER_LIMIT):
        return tokenizer_limit
    return position_limit


def read_chat_template(path: str | None) -> str | None:
    """The `generation.chat_template` file's text (None when none is configured)."""
    if path is None:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"generation.chat_template: cannot read {path}: {exc}") from None
