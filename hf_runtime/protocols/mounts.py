"""Which protocol app serves which path prefix: the one list the service mounts."""

from __future__ import annotations

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.gateway import SCORING_DOCUMENT
from hf_runtime.protocols.openapi import DEFAULT_MAX_REQUEST_BYTES, ErrorShape, document_app

# The root rerank / score / tokenize app's document, off "/openapi.json" (it would pass for
# the whole service's document there).
ROOT_DOCUMENT = SCORING_DOCUMENT
ROOT_APP_TITLE = "hf-runtime rerank, score and tokenize (root and /v2 paths)"
# Where the apps' OpenAPI documents are served: KServe V1, V2, OpenAI, and rerank / score at
# the root. The OpenAI app's own "/v1/openapi.json" is shadowed by V1's (mounted first); its
# document names both prefixes.
OPENAPI_DOCUMENTS = (
    "/v1/openapi.json",
    "/v2/openapi.json",
    "/openai/v1/openapi.json",
    ROOT_DOCUMENT,
)


def protocol_apps(
    registry: ModelRegistry, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> list[tuple[str, FastAPI]]:
    """(mount path, app), in mounting order: the first app that routes a path serves it.

    `max_request_bytes` is the Gateway's limit, stated in every app's OpenAPI document.
    """
    from hf_runtime.protocols import kserve_v1, kserve_v2
    from hf_runtime.protocols.openai.app import make_app as make_openai_app
    from hf_runtime.protocols.openai.scoring import make_root_app
    from hf_runtime.protocols.openai.tokenize import tokenize_router

    v1_app = kserve_v1.make_app(registry)
    # V2 mounts at "/" with its own prefix: a "/v2" mount answers the bare `GET /v2`
    # with a redirect that tritonclient does not follow.
    v2_app = kserve_v2.make_app(registry, prefix="/v2")
    openai_app = make_openai_app(registry)
    # "/rerank", "/score" and "/v2/rerank" (vLLM's aliases): every mount matches only the
    # paths its app routes, and no V2 route matches "/v2/rerank", so it reaches this app.
    scoring_app = make_root_app(registry)
    # vLLM serves /tokenize and /detokenize at the root only: the same OpenAI-shaped root app
    # (and document) serves them there.
    scoring_app.include_router(tokenize_router(registry))
    scoring_app.title = ROOT_APP_TITLE
    # Under /v1 the KServe app comes first so GET /v1/models gets the merged body KServe and
    # OpenAI clients both understand; chat/completions fall through to OpenAI.
    mounts = [
        ("/v1", v1_app),
        ("/", v2_app),
        ("/v1", openai_app),
        ("/openai/v1", openai_app),
        ("/", scoring_app),
    ]

    # Each app's mounts, the one its document is reached at first (they become its servers).
    documented = [
        (v1_app, ErrorShape.KSERVE, ["/v1"]),
        (v2_app, ErrorShape.KSERVE, ["/"]),
        (openai_app, ErrorShape.OPENAI, ["/openai/v1", "/v1"]),
        (scoring_app, ErrorShape.OPENAI, ["/"]),
    ]
    for app, shape, paths in documented:
        document_app(
            app,
            shape,
            mounts=paths,
            max_request_bytes=max_request_bytes,
            # Root apps' documents move off "/openapi.json", which would pass for the whole
            # service's: V2 routes carry their own "/v2" prefix, its document goes beside them.
            openapi_url={v2_app: "/v2/openapi.json", scoring_app: ROOT_DOCUMENT}.get(app),
        )
    return mounts
