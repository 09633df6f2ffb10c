"""Request schemas tightened to what the handlers accept, so that fuzzing reaches the models.

The published documents keep the request schemas the apps declare: types only. Ranges, enums
and cross-field rules are checked by the handlers (400 naming the field), so requests drawn
from the documents alone almost never pass every check: no completion, chat or V2 inference
would run. `valid_requests` returns a copy of a document whose request bodies and model names
follow those rules; responses stay as published, so every check still holds against the
published contract. Values are kept small (tokens, choices, texts) to keep runs fast.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

SHORT_TEXT: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 40}
TOKEN_IDS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": 255},
    "minItems": 1,
    "maxItems": 8,
}


@dataclass(frozen=True)
class Served:
    """What the fuzzed server serves: model names by role, and the embedding size. Rerank and
    score go to the scorer (a cross-encoder) and the embedder (cosine) alike."""

    models: list[str]
    generator: str | None = None
    embedder: str | None = None
    dimensions: int = 8
    scorer: str | None = None
    prompt_names: tuple[str, ...] = ()  # the embedder's prompts (OpenAI `prompt_name`)
    classifier: str | None = None  # a sequence classifier (vLLM's /classify)
    sparse_embedder: str | None = None  # a sparse (SPLADE) model: encoding_format "sparse"

    @property
    def scorers(self) -> list[str]:
        return [name for name in (self.scorer, self.embedder) if name is not None]

    @property
    def classifiers(self) -> list[str]:
        """The models /classify takes: sequence classifiers and cross-encoders."""
        return [name for name in (self.classifier, self.scorer) if name is not None]

    @property
    def poolers(self) -> list[str]:
        return [*self.classifiers, *([self.embedder] if self.embedder else [])]


def number(low: float, high: float) -> dict[str, Any]:
    return {"type": "number", "minimum": low, "maximum": high}


def integer(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def sampling(generator: str) -> dict[str, Any]:
    """Fields completions and chat share, within the ranges SamplingFields.check_sampling takes
    (stream_options only goes with stream: left out)."""
    return {
        "model": {"const": generator},
        "user": SHORT_TEXT,
        "n": integer(1, 3),
        "temperature": number(0, 2),
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "stop": {"anyOf": [SHORT_TEXT, {"type": "array", "items": SHORT_TEXT, "maxItems": 4}]},
        "seed": integer(0, 2**63 - 1),
        "presence_penalty": number(-2, 2),
        "frequency_penalty": number(-2, 2),
        "logit_bias": {
            "type": "object",
            "propertyNames": {"pattern": "^[0-9]{1,2}$"},
            "additionalProperties": number(-100, 100),
            "maxProperties": 3,
        },
        "stream": {"type": "boolean"},
        "top_k": integer(-1, 50),
        "min_p": number(0, 1),
        "repetition_penalty": {"type": "number", "exclusiveMinimum": 0, "maximum": 2},
        "stop_token_ids": {"type": "array", "items": integer(0, 257), "maxItems": 3},
        "ignore_eos": {"type": "boolean"},
        "min_tokens": integer(0, 4),  # never above max_tokens (4..16 below)
    }


# response_format and tools as structured.py takes them (the fakes ignore the grammar, so the
# replies also exercise forced tool calls answered with text: content, never a 500).
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name"],
}
RESPONSE_FORMATS: dict[str, Any] = {
    "enum": [
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA}},
        {"type": "json_schema", "json_schema": {"name": "any", "strict": True}},
    ]
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}


# vLLM's structured_outputs (structured_outputs.py); it excludes a JSON response_format.
STRUCTURED_OUTPUTS: dict[str, Any] = {
    "enum": [
        {"choice": ["yes", "no"]},
        {"regex": "[a-z]{1,8}"},
        {"grammar": 'root ::= "a" | "b"'},
        {"json": PERSON_SCHEMA},
        {"json_object": True},
    ]
}


def completion_request(generator: str) -> dict[str, Any]:
    """Completions with any response_format, or with structured_outputs instead."""
    prompts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 3}
    common = {
        **sampling(generator),
        "prompt": {"anyOf": [SHORT_TEXT, prompts, TOKEN_IDS]},
        "max_tokens": integer(4, 16),
        "echo": {"type": "boolean"},
        "logprobs": integer(0, 5),
    }
    return {
        "anyOf": [
            closed({**common, "response_format": RESPONSE_FORMATS}, ["model", "prompt"]),
            closed({**common, "structured_outputs": STRUCTURED_OUTPUTS}, ["model", "prompt"]),
        ]
    }


def chat_request(generator: str) -> dict[str, Any]:
    """Plain chats (any response_format, tool_choice "none"), or chats with tools (every
    tool_choice; a forced one goes without response_format, which it excludes). "auto" needs
    the fake generator's tool-call parser (hermes)."""
    message = closed(
        {"role": {"enum": ["system", "user", "assistant", "developer"]}, "content": SHORT_TEXT},
        required=["role", "content"],
    )
    common = {
        **sampling(generator),
        "messages": {"type": "array", "items": message, "minItems": 1, "maxItems": 3},
        "max_completion_tokens": integer(4, 16),
        "logprobs": {"type": "boolean"},
        "add_generation_prompt": {"const": True},
    }
    plain = closed(
        {**common, "tool_choice": {"const": "none"}, "response_format": RESPONSE_FORMATS},
        required=["model", "messages"],
    )
    with_tools = closed(
        {
            **common,
            "tools": {"enum": [[WEATHER_TOOL], [WEATHER_TOOL, TIME_TOOL]]},
            "tool_choice": {
                "enum": [
                    "none",
                    "auto",
                    "required",
                    {"type": "function", "function": {"name": "get_weather"}},
                ]
            },
            "parallel_tool_calls": {"type": "boolean"},
            "response_format": {"const": {"type": "text"}},
        },
        required=["model", "messages", "tools"],
    )
    return {"anyOf": [plain, with_tools]}


def anthropic_messages_request(generator: str, count_only: bool = False) -> dict[str, Any]:
    """Anthropic Messages bodies: text turns, an optional system, tools with every tool_choice
    (count_tokens: the same without the sampling fields)."""
    message = closed(
        {"role": {"enum": ["user", "assistant"]}, "content": SHORT_TEXT}, ["role", "content"]
    )
    tool = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    fields: dict[str, Any] = {
        "model": {"const": generator},
        "messages": {"type": "array", "items": message, "minItems": 1, "maxItems": 3},
        "system": SHORT_TEXT,
        "tools": {"const": [tool]},
        "tool_choice": {
            "enum": [
                {"type": "auto"},
                {"type": "any"},
                {"type": "none"},
                {"type": "tool", "name": "get_weather"},
            ]
        },
    }
    required = ["model", "messages", "tools"]  # tool_choice needs tools
    if not count_only:
        fields |= {
            "max_tokens": integer(1, 16),
            "temperature": number(0, 1),
            "top_p": number(0.1, 1),
            "top_k": integer(0, 50),
            "stop_sequences": {"type": "array", "items": SHORT_TEXT, "maxItems": 2},
            "stream": {"type": "boolean"},
            "thinking": {"enum": [{"type": "disabled"}, {"type": "adaptive"}]},
        }
        required.append("max_tokens")
    return closed(fields, required)


def responses_request(generator: str) -> dict[str, Any]:
    """Responses API bodies: a string or message items, instructions, text formats, store; or
    function tools with every tool_choice (previous_response_id needs a stored id: left out)."""
    item = closed(
        {"role": {"enum": ["user", "assistant", "system", "developer"]}, "content": SHORT_TEXT},
        ["role", "content"],
    )
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    tool = {"type": "function", "name": "get_weather", "parameters": parameters}
    items = {"type": "array", "items": item, "minItems": 1, "maxItems": 3}
    common = {
        "model": {"const": generator},
        "input": {"anyOf": [SHORT_TEXT, items]},
        "instructions": SHORT_TEXT,
        "max_output_tokens": integer(1, 16),
        "temperature": number(0, 2),
        "top_p": number(0.1, 1),
        "metadata": {"const": {"k": "v"}},
        "store": {"type": "boolean"},
        "stream": {"type": "boolean"},
    }
    formats = [{"format": {"type": "text"}}, {"format": {"type": "json_object"}}]
    named = {"type": "function", "name": "get_weather"}
    plain = closed({**common, "text": {"enum": formats}}, ["model", "input"])
    with_tools = closed(
        {
            **common,
            "tools": {"const": [tool]},
            "tool_choice": {"enum": ["none", "required", named]},
        },
        ["model", "input", "tools"],
    )
    return {"anyOf": [plain, with_tools]}


def embedding_request(
    embedder: str,
    dimensions: int,
    prompt_names: tuple[str, ...] = (),
    sparse_embedder: str | None = None,
) -> dict[str, Any]:
    """Texts (with one of the model's prompts, when it has some) or token ids (no prompt:
    one cannot apply to them); a sparse model's in each encoding, sparse included (no
    dimensions: its vectors have one value per vocabulary entry, nor vLLM's
    truncate_prompt_tokens, which is for dense vectors)."""
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 4}
    side = {"truncation_side": {"enum": ["left", "right"]}}
    common = {
        "model": {"const": embedder},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": integer(1, dimensions),
        "truncate_prompt_tokens": {"anyOf": [{"const": -1}, integer(1, 8)]},
        **side,
    }
    prompted = {"prompt_name": {"enum": list(prompt_names)}} if prompt_names else {}
    by_text = closed(
        {**common, "input": {"anyOf": [SHORT_TEXT, texts]}, **prompted},
        required=["model", "input"],
    )
    by_ids = closed({**common, "input": TOKEN_IDS}, required=["model", "input"])
    if sparse_embedder is None:
        return {"anyOf": [by_text, by_ids]}
    sparse = closed(
        {
            "model": {"const": sparse_embedder},
            "encoding_format": {"enum": ["float", "base64", "sparse"]},
            "input": {"anyOf": [SHORT_TEXT, texts, TOKEN_IDS]},
            **side,
        },
        required=["model", "input"],
    )
    return {"anyOf": [by_text, by_ids, sparse]}


def tei_embed_request(embedder: str, dimensions: int, prompt_names: tuple[str, ...]) -> Any:
    """TEI's /embed: a text, texts or token ids, its options (no model field: it is the one
    embedding model, or named)."""
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 4}
    truncation = {
        "truncate": {"type": "boolean"},
        "truncation_direction": {"enum": ["Left", "Right", "left", "right"]},
    }
    prompted = {"prompt_name": {"enum": list(prompt_names)}} if prompt_names else {}
    by_text = closed(
        {
            "model": {"const": embedder},
            "inputs": {"anyOf": [SHORT_TEXT, texts]},
            "normalize": {"type": "boolean"},
            "dimensions": integer(1, dimensions),
            **truncation,
            **prompted,
        },
        required=["inputs"],
    )
    by_ids = closed({"inputs": TOKEN_IDS, **truncation}, required=["inputs"])
    return {"anyOf": [by_text, by_ids]}


def tei_embed_sparse_request(sparse_embedder: str, prompt_names: tuple[str, ...]) -> Any:
    """TEI's /embed_sparse: texts or token ids, truncation and a prompt (its prompts are the
    fakes' too), naming the sparse model."""
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 4}
    prompted = {"prompt_name": {"enum": list(prompt_names)}} if prompt_names else {}
    return closed(
        {
            "model": {"const": sparse_embedder},
            "inputs": {"anyOf": [SHORT_TEXT, texts, TOKEN_IDS]},
            "truncate": {"type": "boolean"},
            "truncation_direction": {"enum": ["Left", "Right", "left", "right"]},
            **prompted,
        },
        required=["model", "inputs"],
    )


def tei_similarity_request(embedder: str) -> dict[str, Any]:
    sentences = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 4}
    inputs = closed(
        {"source_sentence": SHORT_TEXT, "sentences": sentences}, ["source_sentence", "sentences"]
    )
    parameters = closed({"truncate": {"type": "boolean"}}, [])
    return closed(
        {"model": {"const": embedder}, "inputs": inputs, "parameters": parameters}, ["inputs"]
    )


def tei_predict_request(classifier: str) -> dict[str, Any]:
    """A text, a pair, or a batch of texts and pairs (TEI's PredictInput)."""
    pair = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 2}
    batch = {"type": "array", "items": {"anyOf": [SHORT_TEXT, pair]}, "minItems": 1, "maxItems": 4}
    return closed(
        {
            "model": {"const": classifier},
            "inputs": {"anyOf": [SHORT_TEXT, batch]},
            "raw_scores": {"type": "boolean"},
            "truncate": {"type": "boolean"},
            "truncation_direction": {"enum": ["Left", "Right"]},
        },
        required=["model", "inputs"],
    )


def tei_rerank_request(scorer: str) -> dict[str, Any]:
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 6}
    return closed(
        {
            "model": {"const": scorer},
            "query": SHORT_TEXT,
            "texts": texts,
            "raw_scores": {"type": "boolean"},
            "return_text": {"type": "boolean"},
            "truncate": {"type": "boolean"},
        },
        required=["model", "query", "texts"],
    )


def tei_tokenize_request(models: list[str]) -> dict[str, Any]:
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 3}
    return closed(
        {
            "model": {"enum": models},
            "inputs": {"anyOf": [SHORT_TEXT, texts]},
            "add_special_tokens": {"type": "boolean"},
        },
        required=["model", "inputs"],
    )


def tei_decode_request(models: list[str]) -> dict[str, Any]:
    ids = {
        "anyOf": [TOKEN_IDS, {"type": "array", "items": TOKEN_IDS, "minItems": 1, "maxItems": 3}]
    }
    return closed(
        {"model": {"enum": models}, "ids": ids, "skip_special_tokens": {"type": "boolean"}},
        required=["model", "ids"],
    )


def rerank_request(scorers: list[str]) -> dict[str, Any]:
    documents = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 6}
    return closed(
        {
            "model": {"enum": scorers},
            "query": SHORT_TEXT,
            "documents": documents,
            "top_n": integer(1, 8),
            "return_documents": {"type": "boolean"},
        },
        required=["model", "query", "documents"],
    )


def score_request(scorers: list[str]) -> dict[str, Any]:
    """1:1 or 1:N (N:N needs equal lengths, which a schema cannot say)."""
    one = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 1}
    many = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 6}
    return closed(
        {
            "model": {"enum": scorers},
            "text_1": {"anyOf": [SHORT_TEXT, one]},
            "text_2": {"anyOf": [SHORT_TEXT, many]},
        },
        required=["model", "text_1", "text_2"],
    )


def tokenize_request(served: Served) -> dict[str, Any]:
    """A text for any model, or (to the generator) a chat; the options of either shape."""
    flags = {"add_special_tokens": {"type": "boolean"}, "return_token_strs": {"type": "boolean"}}
    text = closed(
        {"model": {"enum": served.models}, "prompt": {"type": "string", "maxLength": 40}, **flags},
        required=["model", "prompt"],
    )
    if served.generator is None:
        return text
    message = closed(
        {"role": {"enum": ["system", "user", "assistant"]}, "content": SHORT_TEXT},
        required=["role", "content"],
    )
    chat = closed(
        {
            "model": {"const": served.generator},
            "messages": {"type": "array", "items": message, "minItems": 1, "maxItems": 3},
            "add_generation_prompt": {"type": "boolean"},
            **flags,
        },
        required=["model", "messages"],
    )
    return {"anyOf": [text, chat]}


def detokenize_request(models: list[str]) -> dict[str, Any]:
    tokens = {**TOKEN_IDS, "minItems": 0}  # an empty list decodes to ""
    return closed({"model": {"enum": models}, "tokens": tokens}, required=["model", "tokens"])


def pooling_request(models: list[str], pooling: bool) -> dict[str, Any]:
    """vLLM's /classify (or /pooling) body: texts or token ids, and the options served."""
    texts = {"type": "array", "items": SHORT_TEXT, "minItems": 1, "maxItems": 4}
    fields: dict[str, Any] = {
        "model": {"enum": models},
        "input": {"anyOf": [SHORT_TEXT, texts, TOKEN_IDS]},
        "truncate_prompt_tokens": {"anyOf": [{"const": -1}, integer(1, 8)]},
        "truncation_side": {"enum": ["left", "right"]},
        "use_activation": {"type": "boolean"},
        "add_special_tokens": {"type": "boolean"},
        "request_id": SHORT_TEXT,
    }
    if pooling:
        fields["encoding_format"] = {"enum": ["float", "base64"]}
        fields["embed_dtype"] = {"enum": ["float32", "float16", "bfloat16"]}
        fields["endianness"] = {"enum": ["native", "big", "little"]}
    return closed(fields, required=["model", "input"])


def v2_request() -> dict[str, Any]:
    """One BYTES input whose shape matches its data; outputs by their real name."""
    tensor = closed(
        {
            "name": {"const": "input-0"},
            "shape": {"const": [2]},
            "datatype": {"const": "BYTES"},
            "data": {"type": "array", "items": SHORT_TEXT, "minItems": 2, "maxItems": 2},
        },
        required=["name", "shape", "datatype", "data"],
    )
    output = closed(
        {
            "name": {"const": "output-0"},
            "parameters": closed({"binary_data": {"type": "boolean"}}, required=[]),
        },
        required=["name"],
    )
    return closed(
        {
            "id": SHORT_TEXT,
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
            "outputs": {"type": "array", "items": output, "maxItems": 1},
        },
        required=["inputs"],
    )


def closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def valid_requests(document: dict[str, Any], served: Served) -> dict[str, Any]:
    """A copy of `document` whose requests the handlers accept (see the module docstring)."""
    document = copy.deepcopy(document)
    bodies: dict[str, dict[str, Any]] = {
        "/v2/models/{name}/infer": v2_request(),
        "/v2/models/{name}/versions/{model_version}/infer": v2_request(),
    }
    if served.generator is not None:
        bodies["/completions"] = completion_request(served.generator)
        bodies["/chat/completions"] = chat_request(served.generator)
        bodies["/responses"] = responses_request(served.generator)
        bodies["/responses/input_tokens"] = responses_request(served.generator)
        bodies["/messages"] = anthropic_messages_request(served.generator)
        bodies["/messages/count_tokens"] = anthropic_messages_request(served.generator, True)
    if served.embedder is not None:
        bodies["/embeddings"] = embedding_request(
            served.embedder, served.dimensions, served.prompt_names, served.sparse_embedder
        )
        bodies["/embed"] = bodies["/embed_all"] = tei_embed_request(
            served.embedder, served.dimensions, served.prompt_names
        )
        bodies["/similarity"] = tei_similarity_request(served.embedder)
    if served.sparse_embedder is not None:
        bodies["/embed_sparse"] = tei_embed_sparse_request(
            served.sparse_embedder, served.prompt_names
        )
    if served.scorers:
        bodies["/rerank"] = bodies["/v2/rerank"] = rerank_request(served.scorers)
        bodies["/score"] = score_request(served.scorers)
    if served.classifiers:
        bodies["/classify"] = pooling_request(served.classifiers, pooling=False)
    if served.poolers:
        bodies["/pooling"] = pooling_request(served.poolers, pooling=True)
    if served.scorer is not None:  # a cross-encoder: TEI's /rerank body, its /predict
        bodies["/rerank"] = {"anyOf": [bodies["/rerank"], tei_rerank_request(served.scorer)]}
        bodies["/predict"] = tei_predict_request(served.scorer)
    # Every model tokenizes (generative and encoder models alike).
    bodies["/tokenize"] = {"anyOf": [tokenize_request(served), tei_tokenize_request(served.models)]}
    bodies["/detokenize"] = detokenize_request(served.models)
    bodies["/decode"] = tei_decode_request(served.models)
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "name":
                    parameter["schema"] = {"enum": served.models}
                if parameter["in"] == "path" and parameter["name"] == "model_version":
                    parameter["schema"] = {"enum": ["1", "2", "3"]}
            if path in bodies and "requestBody" in operation:
                content = {"application/json": {"schema": bodies[path]}}
                operation["requestBody"] = {"required": True, "content": content}
    return document
