"""Which protocol app serves which path prefix: the one list the service mounts.

The prefixes and document paths come from the route table (hf_runtime.routes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.openapi import DEFAULT_MAX_REQUEST_BYTES, ErrorShape, document_app
from hf_runtime.routes import (
    ANTHROPIC_DOCUMENT,
    MOUNTS,
    OPENAI_DOCUMENT,
    ROOT_DOCUMENT,
    TEI_DOCUMENT,
    V1_DOCUMENT,
    V2_DOCUMENT,
    Surface,
)

if TYPE_CHECKING:
    from hf_runtime.protocols.openai.responses_api.store import ResponseStore

ROOT = "/"
ROOT_APP_TITLE = "hf-runtime rerank, score and tokenize (root and /v2 paths)"
# Where the apps' OpenAPI documents are served: KServe V1, V2, OpenAI, and rerank / score at
# the root. The OpenAI app's own "/v1/openapi.json" is shadowed by V1's (mounted first); its
# document names both prefixes.
OPENAPI_DOCUMENTS = (
    V1_DOCUMENT,
    V2_DOCUMENT,
    OPENAI_DOCUMENT,
    ROOT_DOCUMENT,
    ANTHROPIC_DOCUMENT,
    TEI_DOCUMENT,
)


def protocol_apps(
    registry: ModelRegistry,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    response_store: ResponseStore | None = None,
) -> list[tuple[str, FastAPI]]:
    """(mount path, app), in mounting order: the first app that routes a path serves it.

    `max_request_bytes` is the Gateway's limit, stated in every app's OpenAPI document;
    `response_store` the Responses API's store (default: its default bounds).
    """
    from hf_runtime.protocols import kserve_v1, kserve_v2
    from hf_runtime.protocols.anthropic.app import make_app as make_anthropic_app
    from hf_runtime.protocols.openai.app import make_app as make_openai_app
    from hf_runtime.protocols.openai.app import make_root_app
    from hf_runtime.protocols.tei.app import make_app as make_tei_app

    (v1_mount,) = MOUNTS[Surface.KSERVE_V1]
    (v2_prefix,) = MOUNTS[Surface.KSERVE_V2]
    openai_mounts = MOUNTS[Surface.OPENAI]
    (anthropic_mount,) = MOUNTS[Surface.ANTHROPIC]
    v1_app = kserve_v1.make_app(registry)
    # V2 mounts at "/" with its own prefix: a "/v2" mount answers the bare `GET /v2`
    # with a redirect that tritonclient does not follow.
    v2_app = kserve_v2.make_app(registry, prefix=v2_prefix)
    openai_app = make_openai_app(registry, response_store)
    anthropic_app = make_anthropic_app(registry)
    # The OpenAI routes' root aliases (hf_runtime.routes): every mount matches only the paths
    # its app routes, and no V2 route matches an alias under "/v2", so it reaches this app.
    root_app = make_root_app(registry, ROOT_APP_TITLE)
    # TEI's routes, at the root where TEI serves them (its /rerank and /tokenize bodies are
    # the root app's to tell apart: they share vLLM's paths).
    tei_app = make_tei_app(registry)
    # Under /v1 the KServe app comes first so GET /v1/models gets the merged body KServe and
    # OpenAI clients both understand; chat/completions fall through to OpenAI.
    mounts = [
        (v1_mount, v1_app),
        (ROOT, v2_app),
        (anthropic_mount, anthropic_app),
        *((mount, openai_app) for mount in openai_mounts),
        (ROOT, root_app),
        (ROOT, tei_app),
    ]

    # Each app's mounts, the one its document is reached at first (they become its servers).
    documented = [
        (v1_app, ErrorShape.KSERVE, [v1_mount]),
        (v2_app, ErrorShape.KSERVE, [ROOT]),
        # OpenAI's document is reached at "/openai/v1" ("/v1/openapi.json" is V1's).
        (openai_app, ErrorShape.OPENAI, list(reversed(openai_mounts))),
        (root_app, ErrorShape.OPENAI, [ROOT]),
        (anthropic_app, ErrorShape.ANTHROPIC, [anthropic_mount]),
        (tei_app, ErrorShape.TEI, [ROOT]),
    ]
    for app, shape, paths in documented:
        document_app(
            app,
            shape,
            mounts=paths,
            max_request_bytes=max_request_bytes,
            # Root apps' documents move off "/openapi.json", which would pass for the whole
            # service's: V2 routes carry their own "/v2" prefix, its document goes beside them.
            openapi_url={
                v2_app: V2_DOCUMENT,
                root_app: ROOT_DOCUMENT,
                anthropic_app: ANTHROPIC_DOCUMENT.removeprefix(anthropic_mount),
                tei_app: TEI_DOCUMENT,
            }.get(app),
        )
    return mounts
