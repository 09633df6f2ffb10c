"""OpenAI-compatible API: completions, chat completions, embeddings, models."""

from __future__ import annotations

from hf_runtime.protocols.openai.app import make_app

__all__ = ["make_app"]
