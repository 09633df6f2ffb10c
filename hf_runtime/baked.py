"""Hub weights baked into the Bento, or downloaded at start: the build argument `hub_weights`.

`bentoml build --arg hub_weights=bake` (with a configuration whose Hub models are pinned to a
commit) declares one `bentoml.models.HuggingFaceModel` per Hub snapshot on the service class,
BentoML's own mechanism: bento.yaml records each one (repo id and commit),
`bentoml containerize` downloads it once into the image under $BENTOML_HF_CACHE_DIR, and at
start `hf_runtime.sources` finds it there without any Hub access. `hub_weights=download` (the
default) declares nothing: Hub weights download at start into the HF cache (HF_HOME).

Only pinned revisions are baked: `bentoml build` then asks the Hub nothing (the commit is
known), and the image serves exactly the snapshot that was tested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from hf_runtime.config import RuntimeConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import HubSnapshot, hub_snapshots

if TYPE_CHECKING:
    from bentoml.models import HuggingFaceModel

HUB_WEIGHTS_ARG = "hub_weights"
DOWNLOAD, BAKE = "download", "bake"
CHOICES = (DOWNLOAD, BAKE)
ATTRIBUTE_PREFIX = "baked_hub_weights_"

T = TypeVar("T")


def split_hub_weights(args: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(the configuration's arguments, the `hub_weights` choice) from the service arguments."""
    rest = dict(args)
    choice = str(rest.pop(HUB_WEIGHTS_ARG, DOWNLOAD)).strip().lower()
    if choice not in CHOICES:
        raise ConfigError(
            f"--arg {HUB_WEIGHTS_ARG}={choice}: allowed values are {', '.join(CHOICES)} "
            f"(default {DOWNLOAD})"
        )
    return rest, choice


def baked_snapshots(config: RuntimeConfig) -> list[HubSnapshot]:
    """Every Hub snapshot the configuration's models need, once each; ConfigError when one is
    not pinned to a commit or when no model comes from the Hub (nothing to bake)."""
    found: dict[HubSnapshot, None] = {}
    for model in config.models:
        for snapshot in hub_snapshots(model):
            if not snapshot.pinned:
                raise ConfigError(
                    f"model {model.model_name}: {HUB_WEIGHTS_ARG}={BAKE} needs {snapshot.repo_id} "
                    "pinned to a commit: give model_revision (tokenizer_revision, or "
                    f"hf://owner/name:<sha>) as a 40-character sha, not "
                    f"{snapshot.revision or 'the default branch'}"
                )
            found[snapshot] = None
    if not found:
        raise ConfigError(
            f"{HUB_WEIGHTS_ARG}={BAKE}: no model comes from the Hugging Face Hub (model_id or "
            "model_dir hf://...), so there is nothing to bake"
        )
    return list(found)


def baked_models(config: RuntimeConfig, choice: str) -> dict[str, HuggingFaceModel]:
    """The service-class attributes that make BentoML bake the Hub weights (none to download
    them at start instead)."""
    if choice != BAKE:
        return {}
    from bentoml.models import HuggingFaceModel

    models: dict[str, HuggingFaceModel] = {}
    for index, snapshot in enumerate(baked_snapshots(config)):
        include = list(snapshot.allow) if snapshot.allow else None
        model = HuggingFaceModel(snapshot.repo_id, revision=snapshot.revision, include=include)
        # The revision is the commit: without this, `bentoml build` would ask the Hub for it.
        model.commit_hash = snapshot.revision
        models[f"{ATTRIBUTE_PREFIX}{index}"] = model
    return models


def with_baked_models(config: RuntimeConfig, choice: str) -> Callable[[type[T]], type[T]]:
    """A class decorator (applied below @bentoml.service) adding `baked_models` to the class."""

    def decorate(cls: type[T]) -> type[T]:
        for name, model in baked_models(config, choice).items():
            setattr(cls, name, model)
        return cls

    return decorate
