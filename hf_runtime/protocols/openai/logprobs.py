"""Engine logprobs (`TokenLogprob`) in OpenAI's two wire formats.

Completions (legacy):
  {"tokens", "token_logprobs", "top_logprobs": [{text: logprob}], "text_offset"}.
Chat:
  {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}.
"""

from __future__ import annotations

import math
from typing import Any

from hf_runtime.types import TokenLogprob

# JSON has no -inf; vLLM sends this for impossible tokens, and clients already expect it.
_MIN_LOGPROB = -9999.0


def _finite(value: float) -> float:
    return value if math.isfinite(value) else _MIN_LOGPROB


def empty_completion_logprobs() -> dict[str, list[Any]]:
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def add_prompt_tokens(out: dict[str, list[Any]], pieces: list[str], offset: int) -> int:
    """Append echoed prompt tokens. The engine reports no prompt logprobs, so they are null
    (OpenAI's legacy API also sends null for a prompt's first token). Returns the next offset."""
    for piece in pieces:
        out["tokens"].append(piece)
        out["token_logprobs"].append(None)
        out["top_logprobs"].append(None)
        out["text_offset"].append(offset)
        offset += len(piece)
    return offset


def add_completion_tokens(
    out: dict[str, list[Any]], entries: list[TokenLogprob], offset: int
) -> int:
    """Append generated tokens; `top_logprobs` always includes the sampled token (as vLLM).
    Returns the next text offset."""
    for entry in entries:
        top = {text: _finite(logprob) for _, text, logprob in entry.top}
        top.setdefault(entry.token, _finite(entry.logprob))
        out["tokens"].append(entry.token)
        out["token_logprobs"].append(_finite(entry.logprob))
        out["top_logprobs"].append(top)
        out["text_offset"].append(offset)
        offset += len(entry.token)
    return offset


def _token_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8", errors="surrogatepass"))


def chat_logprobs(entries: list[TokenLogprob], top_n: int) -> dict[str, Any]:
    """Chat format; `top_n` alternatives per token (what the request's top_logprobs asked)."""
    content = [
        {
            "token": entry.token,
            "logprob": _finite(entry.logprob),
            "bytes": _token_bytes(entry.token),
            "top_logprobs": [
                {"token": text, "logprob": _finite(logprob), "bytes": _token_bytes(text)}
                for _, text, logprob in entry.top[:top_n]
            ],
        }
        for entry in entries
    ]
    return {"content": content, "refusal": None}
