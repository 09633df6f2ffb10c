"""POST /load_lora_adapter and /unload_lora_adapter: vLLM's runtime LoRA routes, same bodies
and answers (a plain-text "Success: ..." line; errors in OpenAI's shape).

vLLM serves them only with VLLM_ALLOW_RUNTIME_LORA_UPDATING set; here they are always served,
behind the API key like every route, and the runtime decides which adapters may load (a client's
`lora_path` only with server.allow_runtime_lora_paths). Differences, both additions: `lora_path`
may be left out to load the model repository's adapter folder named `lora_name`, and
`base_model_name` names
the model the adapter goes on when several could take it. A loaded adapter is a model of its
own: listed in /v1/models, and generating under its name.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from hf_runtime.errors import InvalidInput, NotImplementedFeature
from hf_runtime.model import AdapterManager, ModelRegistry
from hf_runtime.protocols.json_body import JSONBodyRoute
from hf_runtime.routes import OPENAI_LOAD_LORA, OPENAI_UNLOAD_LORA


class LoadLoRAAdapterRequest(BaseModel):
    """vLLM's body (vllm.entrypoints.serve.lora.protocol), `lora_path` optional."""

    lora_name: str = Field(min_length=1)
    lora_path: str | None = Field(
        None,
        min_length=1,
        description="The adapter's folder (adapter_config.json and weights); absent: the "
        "model repository's folder named lora_name.",
    )
    load_inplace: bool = Field(False, description="Replace an adapter of this name.")
    is_3d_lora_weight: bool = False
    base_model_name: str | None = Field(
        None, description="The model the adapter goes on (needed when several could take it)."
    )


class UnloadLoRAAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None


def lora_router(registry: ModelRegistry) -> APIRouter:
    router = APIRouter(route_class=JSONBodyRoute)

    def adapters() -> AdapterManager:
        if not isinstance(registry, AdapterManager):
            raise NotImplementedFeature("this server does not load LoRA adapters")
        return registry

    @router.post(OPENAI_LOAD_LORA.path, response_class=PlainTextResponse)
    async def load_lora_adapter(body: LoadLoRAAdapterRequest) -> PlainTextResponse:
        if body.is_3d_lora_weight:
            raise InvalidInput("is_3d_lora_weight is not supported", param="is_3d_lora_weight")
        manager = adapters()
        if body.load_inplace and body.lora_name in registry.names():
            await manager.unload_adapter(body.lora_name)
        await manager.load_adapter(body.lora_name, body.lora_path, body.base_model_name)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")

    @router.post(OPENAI_UNLOAD_LORA.path, response_class=PlainTextResponse)
    async def unload_lora_adapter(body: UnloadLoRAAdapterRequest) -> PlainTextResponse:
        await adapters().unload_adapter(body.lora_name)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")

    return router
