"""Which protocol app serves which path prefix: the one list the service mounts."""

from __future__ import annotations

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry
from hf_runtime.protocols.openapi import DEFAULT_MAX_REQUEST_BYTES, ErrorShape, document_app

# Where the apps' OpenAPI documents are served: KServe V1, V2, OpenAI. The OpenAI app's own
# "/v1/openapi.json" is shadowed by V1's (mounted first); its document names both prefixes.
OPENAPI_DOCUMENTS = ("/v1/openapi.json", "/v2/openapi.json", "/openai/v1/openapi.json")


def protocol_apps(
    registry: ModelRegistry, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> list[tuple[str, FastAPI]]:
    """(mount path, app), in mounting order: the first app that routes a path serves it.

    `max_request_bytes` is the Gateway's limit, stated in every app's OpenAPI document.
    """
    from hf_runtime.protocols import kserve_v1, kserve_v2
    from hf_runtime.protocols.openai.app import make_app as make_openai_app

    v1_app = kserve_v1.make_app(registry)
    # V2 mounts at "/" with its own prefix: a "/v2" mount answers the bare `GET /v2`
    # with a redirect that tritonclient does not follow.
    v2_app = kserve_v2.make_app(registry, prefix="/v2")
    openai_app = make_openai_app(registry)
    # Under /v1 the KServe app comes first so GET /v1/models gets the merged body KServe and
    # OpenAI clients both understand; chat/completions fall through to OpenAI.
    mounts = [("/v1", v1_app), ("/", v2_app), ("/v1", openai_app), ("/openai/v1", openai_app)]

    # Each app's mounts, the one its document is reached at first (they become its servers).
    documented = [
        (v1_app, ErrorShape.KSERVE, ["/v1"]),
        (v2_app, ErrorShape.KSERVE, ["/"]),
        (openai_app, ErrorShape.OPENAI, ["/openai/v1", "/v1"]),
    ]
    for app, shape, paths in documented:
        document_app(
            app,
            shape,
            mounts=paths,
            max_request_bytes=max_request_bytes,
            # V2 routes carry their own "/v2" prefix; keep its document beside them.
            openapi_url="/v2/openapi.json" if app is v2_app else None,
        )
    return mounts
