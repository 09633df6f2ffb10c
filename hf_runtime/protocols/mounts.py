"""Which protocol app serves which path prefix: the one list the service mounts."""

from __future__ import annotations

from fastapi import FastAPI

from hf_runtime.model import ModelRegistry


def protocol_apps(registry: ModelRegistry) -> list[tuple[str, FastAPI]]:
    """(mount path, app), in mounting order: the first app that routes a path serves it."""
    from hf_runtime.protocols import kserve_v1, kserve_v2
    from hf_runtime.protocols.openai.app import make_app as make_openai_app

    openai_app = make_openai_app(registry)
    # Under /v1 the KServe app comes first so GET /v1/models gets the merged body KServe and
    # OpenAI clients both understand; chat/completions fall through to OpenAI.
    return [
        ("/v1", kserve_v1.make_app(registry)),
        # V2 mounts at "/" with its own prefix: a "/v2" mount answers the bare `GET /v2`
        # with a redirect that tritonclient does not follow.
        ("/", kserve_v2.make_app(registry, prefix="/v2")),
        ("/v1", openai_app),
        ("/openai/v1", openai_app),
    ]
