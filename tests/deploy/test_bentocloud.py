"""The BentoCloud deployment files are what `bentoml deploy -f` accepts, checked offline.

`bentoml deploy -f FILE` (bentoml 1.4's DeploymentAPI.create) structures the file into
CreateDeploymentSchema with bentoml's cattrs converter, then fixes and checks the scaling; it
never validates `config_overrides`, which BentoCloud merges into the service's configuration.
Here the same structuring runs with unknown keys forbidden, the same scaling check, and the
merged service configuration goes through BentoML's own service-config schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, bentocloud_files, bentofile, service_decorator

FILES = bentocloud_files()


def strict_structure(data: dict[str, Any], cls: type) -> Any:
    """bentoml_cattr.structure, but any key the schema does not know is an error."""
    import attr
    from bentoml._internal.utils.cattr import bentoml_cattr
    from cattr.gen import make_dict_structure_fn

    converter = bentoml_cattr.copy()
    converter.register_structure_hook_factory(
        attr.has,
        lambda c: make_dict_structure_fn(c, converter, _cattrs_forbid_extra_keys=True),
    )
    return converter.structure(data, cls)


def test_there_is_one_file_per_backend() -> None:
    backends = {
        {e["name"]: e["value"] for e in yaml.safe_load(p.read_text())["envs"]}["HF_RUNTIME_BACKEND"]
        for p in FILES
    }
    assert backends == {"huggingface", "vllm"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_bentoml_deploy_accepts_the_file(path: Path) -> None:
    from bentoml._internal.cloud.deployment import CreateDeploymentSchemaV2, DeploymentAPI

    config = yaml.safe_load(path.read_text())
    structured = strict_structure(config, CreateDeploymentSchemaV2)
    DeploymentAPI._fix_and_validate_schema(structured)  # min <= max, max > 0
    assert structured.access_authorization is True
    assert structured.secrets == ["huggingface"]
    (service,) = structured.services.values()
    assert 1 <= service.scaling.min_replicas < service.scaling.max_replicas
    assert service.scaling.policy.scale_up_behavior in ("fast", "stable", "disabled")
    assert service.scaling.policy.scale_down_behavior in ("fast", "stable", "disabled")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_service_and_bento_are_ours(path: Path) -> None:
    import schema as s
    from bentoml._internal.configuration.v2 import _SERVICE_CONFIG
    from bentoml._internal.utils import deep_merge

    config = yaml.safe_load(path.read_text())
    decorator = service_decorator()
    assert list(config["services"]) == [decorator["name"]]  # BentoCloud matches by name
    bento, _, version = config["bento"].partition(":")
    assert bentofile(bento)["name"] == bento and version
    (overrides,) = (svc["config_overrides"] for svc in config["services"].values())
    merged = deep_merge({"traffic": dict(decorator["traffic"])}, overrides)
    s.Schema(_SERVICE_CONFIG).validate(merged)  # BentoML's own service-config schema


def test_the_readme_walks_from_build_to_a_scaled_deployment() -> None:
    readme = (DEPLOY.parent.parent / "README.md").read_text()
    for step in (
        "bentoml build .",
        "bentoml build -f configs/deploy/bentofile-vllm.yaml .",
        "bentoml cloud login",
        "bentoml secret create huggingface HF_TOKEN=",
        "bentoml deploy -f configs/deploy/bentocloud/huggingface.yaml",
        "bentoml deploy -f configs/deploy/bentocloud/vllm.yaml",
    ):
        assert step in readme, step
