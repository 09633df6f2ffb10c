"""Tool-call parsers: a model's text -> content and OpenAI `tool_calls`, whole or streamed.

One module per format; `PARSERS` names them as `generation.tool_call_parser` does (vLLM's
`--tool-call-parser` names). Pure Python, no tokenizer: they read the text the engine streams.
"""

from __future__ import annotations

from collections.abc import Callable

from hf_runtime.protocols.openai.tool_parsers.base import (
    CallDelta,
    Delta,
    Extracted,
    Extractor,
    ToolCall,
    assemble,
    extract,
)
from hf_runtime.protocols.openai.tool_parsers.forced import (
    NamedCallExtractor,
    RequiredCallsExtractor,
)
from hf_runtime.protocols.openai.tool_parsers.hermes import HermesExtractor
from hf_runtime.protocols.openai.tool_parsers.llama3_json import Llama3JsonExtractor
from hf_runtime.protocols.openai.tool_parsers.mistral import MistralExtractor
from hf_runtime.protocols.openai.tool_parsers.pythonic import PythonicExtractor

PARSERS: dict[str, Callable[[], Extractor]] = {
    "hermes": HermesExtractor,
    "llama3_json": Llama3JsonExtractor,
    "mistral": MistralExtractor,
    "pythonic": PythonicExtractor,
}

__all__ = [
    "PARSERS",
    "CallDelta",
    "Delta",
    "Extracted",
    "Extractor",
    "NamedCallExtractor",
    "RequiredCallsExtractor",
    "ToolCall",
    "assemble",
    "extract",
]
