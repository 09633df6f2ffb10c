"""TEI's request bodies, as its OpenAPI document describes them (tests check our answers
against that document's response schemas: tests/protocols/schemas/tei_openapi.json).

Fields TEI does not know are ignored, as TEI's JSON decoder ignores them. `model` is ours:
it picks the model where several are served (TEI serves one).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StrictInt, StrictStr

from hf_runtime.protocols.openai.schemas import MAX_EMBEDDING_INPUTS
from hf_runtime.types import Truncation

# The most inputs (texts, token lists, pairs) one request holds: TEI's max_client_batch_size.
MAX_CLIENT_BATCH_SIZE = MAX_EMBEDDING_INPUTS

TokenIds = list[Annotated[StrictInt, Field(ge=0)]]
InputItem = StrictStr | TokenIds
# TEI's `Input`: a string, a token-id list, or a batch of either.
Input = StrictStr | TokenIds | list[InputItem]


def _direction(value: object) -> object:
    """TEI spells the directions "Left" and "Right"; the lower-case forms are taken too."""
    return value.lower() if isinstance(value, str) and value in ("Left", "Right") else value


Direction = Annotated[Literal["left", "right"], BeforeValidator(_direction)]


class TruncatedRequest(BaseModel):
    """TEI's `truncate` (null: the server's auto_truncate) and `truncation_direction`."""

    model: StrictStr | None = None
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"

    def truncation(self) -> Truncation:
        return Truncation(enabled=self.truncate, side=self.truncation_direction)


class EmbedRequest(TruncatedRequest):
    inputs: Input
    normalize: StrictBool = True
    prompt_name: StrictStr | None = None
    dimensions: Annotated[StrictInt, Field(ge=1)] | None = None


class EmbedSparseRequest(TruncatedRequest):
    inputs: Input
    prompt_name: StrictStr | None = None


class EmbedAllRequest(TruncatedRequest):
    inputs: Input
    prompt_name: StrictStr | None = None


class SimilarityInput(BaseModel):
    source_sentence: StrictStr
    sentences: list[StrictStr]


class SimilarityParameters(BaseModel):
    truncate: StrictBool | None = None
    truncation_direction: Direction = "right"
    prompt_name: StrictStr | None = None


class SimilarityRequest(BaseModel):
    model: StrictStr | None = None
    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None

    def truncation(self) -> Truncation:
        parameters = self.parameters or SimilarityParameters()
        return Truncation(enabled=parameters.truncate, side=parameters.truncation_direction)


# TEI's `PredictInput`: a text, a pair of texts, or a batch of texts ([text]) and pairs.
PredictItem = Annotated[list[StrictStr], Field(min_length=1, max_length=2)]
PredictInput = StrictStr | list[StrictStr | PredictItem]


class PredictRequest(TruncatedRequest):
    inputs: PredictInput
    raw_scores: StrictBool = False


class RerankRequest(TruncatedRequest):
    """TEI's rerank body (`texts`; vLLM's and Cohere's have `documents`)."""

    query: StrictStr
    texts: list[StrictStr]
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class TokenizeRequest(BaseModel):
    """TEI's tokenize body (`inputs`; vLLM's has `prompt` or `messages`)."""

    model: StrictStr | None = None
    inputs: StrictStr | list[StrictStr]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None


class DecodeRequest(BaseModel):
    model: StrictStr | None = None
    ids: TokenIds | list[TokenIds]
    skip_special_tokens: StrictBool = True


# ---------------------------------------------------------------- responses (documented)


class Rank(BaseModel):
    index: int
    score: float
    text: str | None = None  # only with return_text


class SimpleToken(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None  # UTF-8 byte offsets in the input; null for a special token
    stop: int | None
