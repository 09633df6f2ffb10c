"""Models by name, with their loading state. Protocols see this through `ModelRegistry`, and
load and unload through `ModelRepository` (the V2 model repository extension)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from hf_runtime.config import ModelConfig, RuntimeConfig
from hf_runtime.errors import ConfigError, InvalidInput, ModelNotFound
from hf_runtime.model import ServedModel
from hf_runtime.observability.context import note_model
from hf_runtime.routes import OPENAI_LOAD_LORA, OPENAI_UNLOAD_LORA
from hf_runtime.runtime import model_repository
from hf_runtime.runtime.generative_model import GenerativeModel
from hf_runtime.runtime.model_repository import RepositoryFolder
from hf_runtime.runtime.model_slot import ModelSlot, load_failure_reason
from hf_runtime.types import ModelState, RepositoryEntry

logger = logging.getLogger("hf_runtime")

__all__ = ["ModelSlot", "Registry", "load_failure_reason"]


class Registry:
    """Name -> ModelSlot. Implements hf_runtime.model.ModelRegistry, ModelRepository and
    AdapterManager (runtime LoRA adapters, served as models on their base model's engine)."""

    def __init__(
        self,
        slots: Sequence[ModelSlot],
        *,
        repository: str | None = None,
        load_at_startup: Sequence[str] = (),
        unload_timeout: float = 30.0,
        allow_adapter_paths: bool = False,
    ) -> None:
        self._slots = {slot.name: slot for slot in slots}
        self._configured = frozenset(self._slots)
        self._repository = repository
        self._load_at_startup = frozenset(load_at_startup)
        self._unload_timeout = unload_timeout  # like the drain: requests get this long
        # A client-given adapter path reads any folder the server can: an operator's choice.
        self._allow_adapter_paths = allow_adapter_paths
        self._folders: dict[str, RepositoryFolder] = {}
        self._shadowed: set[str] = set()  # folders named like a configured model
        # One load at a time, whoever asks: transformers' lazy module imports are not
        # thread-safe, and one model at a time keeps peak memory at the largest model's.
        self._load_turn = asyncio.Lock()
        # The server's drain state (SIGTERM): not ready, so load balancers stop sending.
        self.is_draining: Callable[[], bool] = lambda: False

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> Registry:
        server = config.server
        return cls(
            [ModelSlot(m) for m in config.models],
            repository=server.model_repository,
            load_at_startup=server.model_repository_load,
            unload_timeout=server.drain_timeout,
            allow_adapter_paths=server.allow_runtime_lora_paths,
        )

    def get(self, name: str) -> ModelSlot:
        try:
            slot = self._slots[name]
        except KeyError:
            raise ModelNotFound(name) from None
        note_model(slot.name, slot.backend)  # labels this request's metrics and logs
        slot.hold()  # an unload waits for this request
        return slot

    def names(self) -> list[str]:
        """The models served or meant to be: not the repository's unloaded folders."""
        return [name for name, slot in self._slots.items() if slot.wanted or slot.ready]

    def slots(self) -> list[ModelSlot]:
        return list(self._slots.values())

    @property
    def ready(self) -> bool:
        """Not draining, and every model meant to be loaded has loaded."""
        wanted = [slot for slot in self._slots.values() if slot.wanted]
        return not self.is_draining() and all(slot.ready for slot in wanted)

    @property
    def live(self) -> bool:
        """False once a loaded model's engine has died (it will never serve again)."""
        return not self.dead_engines()

    def dead_engines(self) -> dict[str, str]:
        """Model name -> reason, for each loaded model whose engine has died since."""
        return {
            slot.name: status.reason
            for slot in self._slots.values()
            if slot.backend and (status := slot.status()).state is ModelState.FAILED
        }

    async def load_all(self) -> None:
        """Load every configured model (and the repository folders asked for at startup), one
        after another; a failure does not stop the others."""
        if self._repository:
            await self._rescan()
            for name, folder in self._folders.items():
                if "*" in self._load_at_startup or name in self._load_at_startup:
                    if folder.error:
                        logger.error("model repository folder %s: %s", name, folder.error)
                    elif name in self._slots and not folder.is_adapter:
                        self._slots[name].wanted = True
            missing = sorted(self._load_at_startup - set(self._folders) - {"*"})
            if missing:
                logger.error("model_repository_load names no folder: %s", ", ".join(missing))
        first_error: BaseException | None = None
        for slot in [s for s in self._slots.values() if s.wanted and not s.base]:
            try:
                async with slot.lock:
                    await self._load_slot(slot)
            except Exception as exc:  # logged by the slot; keep loading the rest
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    # ------------------------------------------------------------ ModelRepository

    async def index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        await self._rescan()
        entries = [slot.entry() for slot in self._slots.values()]
        for folder in self._folders.values():
            if folder.error and folder.name not in self._slots:
                entries.append(RepositoryEntry(folder.name, ModelState.FAILED, folder.error))
        if ready_only:
            entries = [e for e in entries if e.state is ModelState.READY]
        return sorted(entries, key=lambda e: e.name)

    async def load(self, name: str) -> None:
        slot = await self._slot_for_load(name)
        async with slot.lock:
            slot.wanted = True
            if slot.ready:
                return  # loading twice is idempotent
            try:
                await self._load_slot(slot)
            except Exception as exc:
                reason = slot.status().reason or load_failure_reason(exc)
                raise InvalidInput(
                    f"failed to load model {name}: {reason}", param="model"
                ) from None

    async def unload(self, name: str) -> None:
        if name not in self._slots:
            await self._rescan()
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(name)
        if slot.base:
            raise InvalidInput(
                f"model {name} is a LoRA adapter of {slot.base}: unload it with "
                f"{OPENAI_UNLOAD_LORA.paths[0]}, or unload its base model",
                param="model",
            )
        async with slot.lock:
            slot.wanted = False
            if slot.model is None:
                slot.forget_failure()  # no longer meant to be loaded: UNAVAILABLE
                return  # unloading twice is idempotent too
            await self._unload_adapters_of(slot)
            await slot.unload(self._unload_timeout)
            await asyncio.to_thread(model_repository.release_memory)
            logger.info("model %s unloaded", name)

    # ------------------------------------------------------------ AdapterManager

    async def load_adapter(self, name: str, path: str | None, base_model: str | None) -> None:
        if path is None:  # a LoRA adapter folder of the model repository, by name
            await self._rescan()
            folder = self._folders.get(name)
            if folder is None or not folder.is_adapter:
                raise InvalidInput(
                    f"no lora_path given, and the model repository has no LoRA adapter "
                    f"folder {name}",
                    param="lora_path",
                )
            path = str(folder.path)
        elif not self._allow_adapter_paths:
            raise InvalidInput(
                "loading a LoRA adapter from a lora_path is off on this server "
                "(server.allow_runtime_lora_paths); leave lora_path out to load the model "
                "repository's adapter folder named lora_name",
                param="lora_path",
            )
        if name in self._slots:
            what = "has already been loaded" if self._slots[name].base else "is a served model"
            raise InvalidInput(f"The lora adapter '{name}' {what}.", param="lora_name")
        base = self._adapter_base(base_model)
        async with base.lock:  # not while the base model loads or unloads
            model = base.model
            if not base.ready or not isinstance(model, GenerativeModel):
                raise InvalidInput(f"model {base.name} is not loaded", param="base_model_name")
            adapter = await model.add_adapter(name, path)
            self.add_adapter(base, adapter)
        logger.info("LoRA adapter %s loaded on %s from %s", name, base.name, path)

    async def unload_adapter(self, name: str) -> None:
        slot = self._slots.get(name)
        if slot is None or not slot.base:
            error = ModelNotFound(name)
            error.message = f"The lora adapter '{name}' cannot be found."
            error.args = (error.message,)
            raise error
        base = self._slots[slot.base]
        async with base.lock:
            adapter = slot.model
            await slot.unload(self._unload_timeout)  # its requests in flight end first
            self._slots.pop(name, None)
            if isinstance(base.model, GenerativeModel) and isinstance(adapter, GenerativeModel):
                await base.model.remove_adapter(adapter)
        logger.info("LoRA adapter %s unloaded from %s", name, base.name)

    def _adapter_base(self, base_model: str | None) -> ModelSlot:
        """The loaded model an adapter goes on: the one named, else the one generative model
        that takes adapters (else the one generative model, whose load refuses them)."""
        if base_model is not None:
            slot = self._slots.get(base_model)
            if slot is None:
                raise ModelNotFound(base_model)
            return slot
        generative = [
            slot
            for slot in self._slots.values()
            if not slot.base and slot.ready and isinstance(slot.model, GenerativeModel)
        ]
        taking = [s for s in generative if s.model.takes_adapters]  # type: ignore[union-attr]
        for candidates in (taking, generative):
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                names = ", ".join(s.name for s in candidates)
                raise InvalidInput(
                    f"several models could take the adapter ({names}): name one in base_model_name",
                    param="base_model_name",
                )
        raise InvalidInput("no generative model is loaded to take a LoRA adapter")

    # ------------------------------------------------------------ internals

    async def _slot_for_load(self, name: str) -> ModelSlot:
        if name not in self._configured:
            await self._rescan()  # a folder added since the last look loads too
        slot = self._slots.get(name)
        if slot is None:
            folder = self._folders.get(name)
            if folder is not None and folder.error:
                raise InvalidInput(f"model {name}: {folder.error}", param="model")
            if folder is not None and folder.is_adapter:
                raise InvalidInput(
                    f"{name} is a LoRA adapter: load it with {OPENAI_LOAD_LORA.paths[0]}",
                    param="model",
                )
            raise ModelNotFound(name)
        if slot.base:
            raise InvalidInput(f"model {name} is a LoRA adapter of {slot.base}", param="model")
        return slot

    async def _load_slot(self, slot: ModelSlot) -> None:
        async with self._load_turn:
            adapters = await slot.load()
        try:
            self._add_adapters(slot, adapters)
        except ConfigError as exc:
            await slot.unload(0)
            slot.fail(str(exc))
            raise

    async def _rescan(self) -> None:
        """Read the repository folder again: new folders get (unloaded) slots; a folder gone
        loses its slot unless its model is loaded."""
        if not self._repository:
            return
        folders = await asyncio.to_thread(model_repository.scan, self._repository)
        self._folders = folders
        for name, folder in folders.items():
            if name in self._configured:
                if name not in self._shadowed:  # said once: the configured model wins
                    self._shadowed.add(name)
                    logger.warning(
                        "model repository folder %s: a configured model has its name", name
                    )
                continue
            if folder.config is not None and name not in self._slots:
                self._slots[name] = ModelSlot(folder.config, wanted=False)
        for name, slot in list(self._slots.items()):
            gone = name not in folders or folders[name].config is None
            idle = slot.model is None and not slot.lock.locked()
            if name not in self._configured and not slot.base and gone and idle:
                del self._slots[name]

    def _add_adapters(self, slot: ModelSlot, adapters: Sequence[ServedModel]) -> None:
        """Serve each LoRA adapter of a loaded model under its own name (KServe #4338)."""
        for adapter in adapters:
            self.add_adapter(slot, adapter)

    def add_adapter(self, slot: ModelSlot, adapter: ServedModel) -> None:
        if adapter.name in self._slots:
            raise ConfigError(
                f"model {slot.name}: adapter name {adapter.name} clashes with a served model"
            )
        config: ModelConfig = slot.config.model_copy(update={"model_name": adapter.name})
        adapter_slot = ModelSlot(config, base=slot.name)
        adapter_slot.attach(adapter)
        self._slots[adapter.name] = adapter_slot

    async def _unload_adapters_of(self, slot: ModelSlot) -> None:
        """Its adapters go first: refused at once, their requests in flight waited for (the
        engine they run on closes with the base model)."""
        adapters = [other for other in self._slots.values() if other.base == slot.name]
        for adapter in adapters:
            adapter.unloading = True
        await asyncio.gather(*(a.wait_idle(self._unload_timeout) for a in adapters))
        for adapter in adapters:
            del self._slots[adapter.name]

    async def close(self) -> None:
        for slot in self._slots.values():
            if not slot.base:  # an adapter closes with its base model
                await slot.aclose()
