"""Every HTTP route the service answers, declared once, and what is derived from the table.

A leaf (no hf_runtime import, no web framework), so every layer that needs a route's path or
facts reads it here: the protocol apps register their handlers at `Route.path`, the mounts
put each protocol's app at `MOUNTS[protocol]`, the gateway classifies paths (`surface_for`,
`PROBE_PATHS`, `OPENAI_ROOT_PATHS`), the BentoML fast path builds its URL patterns
(`protocol_url_patterns`), the OpenAPI documents list each route's error statuses, and
messages name the routes that would serve a model (`routes_offering`).
tests/protocols/test_route_table.py checks that the apps route exactly what this table says.

Adding a route: its `Route` here (and in `ROUTES`), and its handler in the protocol's module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Surface(str, Enum):
    """What a path belongs to; decides protection and the error shape."""

    KSERVE_V1 = "v1"
    KSERVE_V2 = "v2"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"  # the Anthropic Messages API (its own error shape)
    TEI = "tei"  # text-embeddings-inference's routes, at the root (its own error shape)
    PROBE = "probe"
    METRICS = "metrics"
    OTHER = "other"  # BentoML's docs page and OpenAPI document

    @property
    def is_protocol(self) -> bool:
        return self in (
            Surface.KSERVE_V1,
            Surface.KSERVE_V2,
            Surface.OPENAI,
            Surface.ANTHROPIC,
            Surface.TEI,
        )


# Where each protocol's app answers: a route's `path` is relative to each of these. The KServe
# app comes first under "/v1" (see protocols.mounts), so GET /v1/models is KServe's.
MOUNTS: dict[Surface, tuple[str, ...]] = {
    Surface.KSERVE_V1: ("/v1",),
    Surface.KSERVE_V2: ("/v2",),
    Surface.OPENAI: ("/v1", "/openai/v1"),
    Surface.ANTHROPIC: ("/v1",),
    Surface.TEI: ("",),
    Surface.PROBE: ("",),
    Surface.METRICS: ("",),
    Surface.OTHER: ("",),
}
# Prefixes the runtime owns, checked in order after the exact paths (unknown paths under them
# get the protocol's JSON 404): "/v1/models..." is the KServe app's, the rest of "/v1" OpenAI's.
SURFACE_PREFIXES: tuple[tuple[str, Surface], ...] = (
    ("/v2", Surface.KSERVE_V2),
    ("/openai", Surface.OPENAI),
    ("/v1/models", Surface.KSERVE_V1),
    ("/v1/messages", Surface.ANTHROPIC),
    ("/v1", Surface.OPENAI),
)
# Where the protocol apps' OpenAPI documents are served. The root app's (OpenAI's shape: rerank,
# score and tokenize outside "/v1") is off "/openapi.json", which would pass for the service's.
V1_DOCUMENT = "/v1/openapi.json"
V2_DOCUMENT = "/v2/openapi.json"
OPENAI_DOCUMENT = "/openai/v1/openapi.json"
ROOT_DOCUMENT = "/scoring/openapi.json"
# The Anthropic app's, beside its routes ("/v1/openapi.json" is V1's).
ANTHROPIC_DOCUMENT = "/v1/messages/openapi.json"
# The TEI app's (a root app: off "/openapi.json" too).
TEI_DOCUMENT = "/tei/openapi.json"


@dataclass(frozen=True)
class Route:
    """One route: `path` under each of its surface's mounts (unless not `mounted`), plus
    `root_aliases` (absolute paths served by the root app, in the route's own error shape)."""

    surface: Surface
    method: str
    path: str
    capability: str | None = None  # the hf_runtime.model interface it needs, by name
    root_aliases: tuple[str, ...] = ()
    runs_model: bool = False  # queued behind a model: 429 when its queue is full
    never_succeeds: bool = False  # always an error (a feature not offered): no 200
    optional: bool = False  # a feature a model or this server may lack: 501 then
    streams: bool = False  # server-sent events when asked
    probe: bool = False  # a health probe: open without an API key, answered while draining
    served_by_bentoml: bool = False  # BentoML's own route, not a protocol app's
    mounted: bool = True  # False: served at its root aliases only (vLLM's root-only routes)

    @property
    def paths(self) -> tuple[str, ...]:
        mounted = tuple(m + self.path for m in MOUNTS[self.surface]) if self.mounted else ()
        return mounted + self.root_aliases

    def app_paths(self, root: bool) -> tuple[str, ...]:
        """The paths an app declares it at: its root aliases in the root app, else `path`
        (relative to the app's mounts; none for a route that is not mounted)."""
        if root:
            return self.root_aliases
        return (self.path,) if self.mounted else ()

    def error_statuses(self) -> frozenset[int]:
        """Every error status it can answer (its OpenAPI error responses)."""
        statuses = {400, 413, 500}
        if not self.probe:
            statuses |= {401, 503}  # the Gateway's API key check and drain
        # A POST names its model in the body.
        openai_post = self.surface in (Surface.OPENAI, Surface.ANTHROPIC) and self.method == "POST"
        if "{" in self.path or openai_post:
            statuses.add(404)  # names a model (in the path or the body) that may not exist
        if self.runs_model:
            statuses.add(429)
        if self.never_succeeds or self.optional:
            statuses.add(501)
        if self.surface is Surface.TEI:
            statuses.add(404)  # the `model` named (a field, or /info's query) is unknown
            if self.method == "POST":
                statuses.add(424)  # TEI's answer when the model does not serve the route
        return frozenset(statuses)

    def shadowed_by_kserve(self) -> bool:
        """Whether the KServe V1 app (mounted first under "/v1") answers one of its paths:
        OpenAI's model list, then, has either protocol's error body."""
        return self.surface is Surface.OPENAI and any(
            other.surface is Surface.KSERVE_V1
            and other.method == self.method
            and set(other.paths) & set(self.paths)
            for other in ROUTES
        )


V1_MODELS = Route(Surface.KSERVE_V1, "GET", "/models")
V1_MODEL = Route(Surface.KSERVE_V1, "GET", "/models/{name}")
V1_PREDICT = Route(
    Surface.KSERVE_V1, "POST", "/models/{name}:predict", "Predictor", runs_model=True
)
V1_EXPLAIN = Route(Surface.KSERVE_V1, "POST", "/models/{name}:explain", never_succeeds=True)

V2_SERVER = Route(Surface.KSERVE_V2, "GET", "")
V2_SERVER_SLASH = Route(Surface.KSERVE_V2, "GET", "/")
V2_LIVE = Route(Surface.KSERVE_V2, "GET", "/health/live", probe=True)
V2_READY = Route(Surface.KSERVE_V2, "GET", "/health/ready", probe=True)
V2_MODELS = Route(Surface.KSERVE_V2, "GET", "/models")
V2_MODEL = Route(Surface.KSERVE_V2, "GET", "/models/{name}")
# Unversioned models answer 501 on version routes, like KServe.
V2_VERSION = Route(
    Surface.KSERVE_V2, "GET", "/models/{name}/versions/{model_version}", optional=True
)
V2_MODEL_READY = Route(Surface.KSERVE_V2, "GET", "/models/{name}/ready")
V2_VERSION_READY = Route(
    Surface.KSERVE_V2, "GET", "/models/{name}/versions/{model_version}/ready", optional=True
)
V2_INFER = Route(Surface.KSERVE_V2, "POST", "/models/{name}/infer", "Predictor", runs_model=True)
V2_VERSION_INFER = Route(
    Surface.KSERVE_V2,
    "POST",
    "/models/{name}/versions/{model_version}/infer",
    "Predictor",
    runs_model=True,
    optional=True,
)
# The model repository extension (no model runs: no 429).
V2_REPOSITORY_INDEX = Route(Surface.KSERVE_V2, "POST", "/repository/index")
V2_REPOSITORY_LOAD = Route(Surface.KSERVE_V2, "POST", "/repository/models/{name}/load")
V2_REPOSITORY_UNLOAD = Route(Surface.KSERVE_V2, "POST", "/repository/models/{name}/unload")

OPENAI_COMPLETIONS = Route(
    Surface.OPENAI, "POST", "/completions", "TextGenerator", runs_model=True, streams=True
)
OPENAI_CHAT = Route(
    Surface.OPENAI, "POST", "/chat/completions", "TextGenerator", runs_model=True, streams=True
)
OPENAI_EMBEDDINGS = Route(Surface.OPENAI, "POST", "/embeddings", "Embedder", runs_model=True)
# vLLM serves rerank at "/rerank", "/v1/rerank" and "/v2/rerank" (Cohere's v2 API), score at
# "/score" and "/v1/score"; vLLM's /tokenize and /detokenize are at the root only.
OPENAI_RERANK = Route(
    Surface.OPENAI,
    "POST",
    "/rerank",
    "Scorer",
    root_aliases=("/rerank", "/v2/rerank"),
    runs_model=True,
)
OPENAI_SCORE = Route(
    Surface.OPENAI, "POST", "/score", "Scorer", root_aliases=("/score",), runs_model=True
)
OPENAI_TOKENIZE = Route(
    Surface.OPENAI, "POST", "/tokenize", "TextTokenizer", root_aliases=("/tokenize",)
)
OPENAI_DETOKENIZE = Route(
    Surface.OPENAI, "POST", "/detokenize", "TextTokenizer", root_aliases=("/detokenize",)
)
# vLLM's pooling API, at the root only, as vLLM 0.32 serves it (protocols.openai.pooling).
OPENAI_CLASSIFY = Route(
    Surface.OPENAI,
    "POST",
    "/classify",
    "Pooler",
    root_aliases=("/classify",),
    runs_model=True,
    mounted=False,
)
OPENAI_POOLING = Route(
    Surface.OPENAI,
    "POST",
    "/pooling",
    "Pooler",
    root_aliases=("/pooling",),
    runs_model=True,
    mounted=False,
)
OPENAI_MODELS = Route(Surface.OPENAI, "GET", "/models")
# vLLM's runtime LoRA routes (501 where the registry loads no adapters).
OPENAI_LOAD_LORA = Route(Surface.OPENAI, "POST", "/load_lora_adapter", optional=True)
OPENAI_UNLOAD_LORA = Route(Surface.OPENAI, "POST", "/unload_lora_adapter", optional=True)
OPENAI_MODEL = Route(Surface.OPENAI, "GET", "/models/{name}")
# OpenAI's Responses API (protocols.openai.responses_api): the chat route's generation; stored
# responses are read and deleted by id. No capability: messages naming the routes that serve a
# generator keep naming completions and chat.
OPENAI_RESPONSES = Route(Surface.OPENAI, "POST", "/responses", runs_model=True, streams=True)
OPENAI_RESPONSE = Route(Surface.OPENAI, "GET", "/responses/{response_id}")
OPENAI_RESPONSE_DELETE = Route(Surface.OPENAI, "DELETE", "/responses/{response_id}")
OPENAI_RESPONSE_INPUT_ITEMS = Route(Surface.OPENAI, "GET", "/responses/{response_id}/input_items")
# No response runs in the background here: cancelling one is always a 400 (or 404).
OPENAI_RESPONSE_CANCEL = Route(Surface.OPENAI, "POST", "/responses/{response_id}/cancel")
# The rendered prompt's length (no model runs: no 429).
OPENAI_RESPONSES_INPUT_TOKENS = Route(Surface.OPENAI, "POST", "/responses/input_tokens")
OPENAI_RESPONSES_COMPACT = Route(Surface.OPENAI, "POST", "/responses/compact", never_succeeds=True)

# The Anthropic Messages API (protocols.anthropic), over the same generation.
ANTHROPIC_MESSAGES = Route(Surface.ANTHROPIC, "POST", "/messages", runs_model=True, streams=True)
ANTHROPIC_COUNT_TOKENS = Route(Surface.ANTHROPIC, "POST", "/messages/count_tokens")

# text-embeddings-inference's routes (protocols.tei), at the root as TEI serves them. TEI's
# /rerank and /tokenize share OPENAI_RERANK's and OPENAI_TOKENIZE's root aliases: the root app
# tells the two shapes apart by the body (protocols.tei.shared_paths). A POST names no model:
# the one served (or a `model` field).
TEI_EMBED = Route(Surface.TEI, "POST", "/embed", "Embedder", runs_model=True)
TEI_EMBED_ALL = Route(Surface.TEI, "POST", "/embed_all", "Embedder", runs_model=True)
TEI_EMBED_SPARSE = Route(Surface.TEI, "POST", "/embed_sparse", "SparseEmbedder", runs_model=True)
TEI_PREDICT = Route(Surface.TEI, "POST", "/predict", "Classifier", runs_model=True)
TEI_SIMILARITY = Route(Surface.TEI, "POST", "/similarity", "Embedder", runs_model=True)
TEI_DECODE = Route(Surface.TEI, "POST", "/decode", "TextTokenizer")
TEI_INFO = Route(Surface.TEI, "GET", "/info")

# BentoML's own: its health probes, /metrics and its API documents (our gateway sees them too).
LIVEZ = Route(Surface.PROBE, "GET", "/livez", probe=True, served_by_bentoml=True)
HEALTHZ = Route(Surface.PROBE, "GET", "/healthz", probe=True, served_by_bentoml=True)
READYZ = Route(Surface.PROBE, "GET", "/readyz", probe=True, served_by_bentoml=True)
METRICS = Route(Surface.METRICS, "GET", "/metrics", served_by_bentoml=True)
SCHEMA_JSON = Route(Surface.OTHER, "GET", "/schema.json", served_by_bentoml=True)
DOCS_JSON = Route(Surface.OTHER, "GET", "/docs.json", served_by_bentoml=True)

ROUTES: tuple[Route, ...] = (
    V1_MODELS, V1_MODEL, V1_PREDICT, V1_EXPLAIN,
    V2_SERVER, V2_SERVER_SLASH, V2_LIVE, V2_READY, V2_MODELS, V2_MODEL, V2_VERSION,
    V2_MODEL_READY, V2_VERSION_READY, V2_INFER, V2_VERSION_INFER,
    V2_REPOSITORY_INDEX, V2_REPOSITORY_LOAD, V2_REPOSITORY_UNLOAD,
    OPENAI_COMPLETIONS, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RERANK, OPENAI_SCORE,
    OPENAI_TOKENIZE, OPENAI_DETOKENIZE, OPENAI_CLASSIFY, OPENAI_POOLING,
    OPENAI_MODELS, OPENAI_MODEL,
    OPENAI_LOAD_LORA, OPENAI_UNLOAD_LORA,
    OPENAI_RESPONSES, OPENAI_RESPONSE, OPENAI_RESPONSE_DELETE, OPENAI_RESPONSE_INPUT_ITEMS,
    OPENAI_RESPONSE_CANCEL, OPENAI_RESPONSES_INPUT_TOKENS, OPENAI_RESPONSES_COMPACT,
    ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS,
    TEI_EMBED, TEI_EMBED_ALL, TEI_EMBED_SPARSE, TEI_PREDICT, TEI_SIMILARITY, TEI_DECODE,
    TEI_INFO,
    LIVEZ, HEALTHZ, READYZ, METRICS, SCHEMA_JSON, DOCS_JSON,
)  # fmt: skip

PROBE_PATHS = frozenset(path for route in ROUTES if route.probe for path in route.paths)
# Root paths in OpenAI's error shape. Checked before the "/v2" prefix: "/v2/rerank" is not V2.
OPENAI_ROOT_PATHS = frozenset(
    {alias for route in ROUTES for alias in route.root_aliases} | {ROOT_DOCUMENT}
)
# The root aliases where TEI's body is served beside vLLM's (protocols.tei.shared_paths).
TEI_SHARED_PATHS = frozenset({OPENAI_RERANK.root_aliases[0], OPENAI_TOKENIZE.root_aliases[0]})
TEI_PATHS = frozenset(
    {path for route in ROUTES if route.surface is Surface.TEI for path in route.paths}
    | {TEI_DOCUMENT}
)
_EXACT: dict[str, Surface] = {
    **dict.fromkeys(TEI_PATHS, Surface.TEI),
    **dict.fromkeys(OPENAI_ROOT_PATHS, Surface.OPENAI),
    **dict.fromkeys(PROBE_PATHS, Surface.PROBE),
    **dict.fromkeys(METRICS.paths, Surface.METRICS),
}


def surface_for(path: str) -> Surface:
    """What `path` belongs to: an exact route first, then the prefixes the runtime owns."""
    exact = _EXACT.get(path)
    if exact is not None:
        return exact
    for prefix, surface in SURFACE_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return surface
    return Surface.OTHER


def protocol_url_patterns() -> tuple[str, ...]:
    """Full URLs (scheme://host/path, no query) of every protocol route, as regular
    expressions: everything under the owned prefixes, and the root aliases outside them."""
    mounts = [m for surface, ms in MOUNTS.items() if surface.is_protocol for m in ms if m]
    heads = list(dict.fromkeys(mount.split("/")[1] for mount in mounts))
    # Root aliases, and the routes of protocols mounted at the root (TEI's), outside them.
    at_root = {alias for route in ROUTES for alias in route.root_aliases} | TEI_PATHS
    outside = sorted(path.lstrip("/") for path in at_root if path.split("/")[1] not in heads)
    start = r"^[a-z]+://[^/]*/"
    return (
        start + "(" + "|".join(map(re.escape, heads)) + ")(/|$)",
        start + "(" + "|".join(map(re.escape, outside)) + ")$",
    )


def unknown_url_pattern() -> str:
    """A full URL of any path but BentoML's own routes', as a regular expression."""
    own = "|".join(re.escape(r.path.lstrip("/")) for r in ROUTES if r.served_by_bentoml)
    return r"^[a-z]+://[^/]*/(?!(" + own + r")?$)"


def routes_offering(capability: str, surface: Surface) -> list[Route]:
    """The routes of `surface` that serve a model offering `capability`, in table order."""
    return [r for r in ROUTES if r.capability == capability and r.surface is surface]


def openai_routes_naming(
    capability: str, prefix: str = MOUNTS[Surface.OPENAI][0], *, first: Route | None = None
) -> str:
    """The OpenAI routes that serve `capability` under `prefix`, as messages name them
    ("/v1/rerank or /v1/score"; `first` named first); "" for none."""
    routes = sorted(routes_offering(capability, Surface.OPENAI), key=lambda r: r is not first)
    return " or ".join(prefix + r.path if r.mounted else r.root_aliases[0] for r in routes)


def route_at(method: str, path: str) -> Route | None:
    """The route answering `method path` (a full path, templated like the table's)."""
    for route in ROUTES:
        if route.method == method and path in route.paths:
            return route
    return None
