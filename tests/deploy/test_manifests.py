"""Every file under configs/deploy/ parses; every Kubernetes object validates against a schema.

Core kinds (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, Secret,
ConfigMap) are checked with kubernetes-validate's strict schemas (unknown fields are errors),
for the oldest and newest Kubernetes versions targeted. KServe and Yatai kinds are checked
against hand-written minimal JSON Schemas in tests/deploy/schemas/ (no PyPI package ships those
CRDs: see each schema's description), which reference the same core definitions.
"""

from __future__ import annotations

import copy

import pytest

from tests.deploy.manifests import (
    CORE_KINDS,
    CUSTOM_SCHEMAS,
    DEPLOY,
    K8S_VERSIONS,
    Doc,
    custom_validator,
    documents,
    kube_documents,
    one,
    yaml_files,
)

KUBE = kube_documents()
CORE = [d for d in KUBE if d.kind in CORE_KINDS]
CUSTOM = [d for d in KUBE if d.kind in CUSTOM_SCHEMAS]


def test_every_file_parses_and_every_object_is_known() -> None:
    assert {p.parent.name for p in yaml_files()} >= {"bentocloud", "kubernetes", "kserve", "yatai"}
    for doc in documents():
        assert isinstance(doc.body, dict) and doc.body, doc.id
    kinds = {d.kind for d in KUBE}
    assert kinds == CORE_KINDS | set(CUSTOM_SCHEMAS), kinds
    assert len(CORE) + len(CUSTOM) == len(KUBE)
    # names are unique per kind, so `kubectl apply` never overwrites one with another
    names = [(d.kind, d.body["metadata"]["name"]) for d in KUBE]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", CORE, ids=lambda d: d.id)
def test_core_kinds_validate(doc: Doc, version: str) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc.body, version, strict=True)


@pytest.mark.parametrize("doc", CUSTOM, ids=lambda d: d.id)
def test_kserve_and_yatai_kinds_validate(doc: Doc) -> None:
    errors = sorted(custom_validator(doc.kind).iter_errors(doc.body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _errors(body: dict) -> list[str]:
    return [e.message for e in custom_validator(body["kind"]).iter_errors(body)]


def test_the_schemas_catch_mistakes() -> None:
    """The validators are strict: a misspelt field, a wrong type or a bad core type fails."""
    import kubernetes_validate
    from kubernetes_validate.utils import ValidationError

    runtime = copy.deepcopy(one("ServingRuntime"))
    runtime["spec"]["supportedModelFormat"] = runtime["spec"].pop("supportedModelFormats")
    assert _errors(runtime)
    runtime = copy.deepcopy(one("ServingRuntime"))
    runtime["spec"]["containers"][0]["readinesProbe"] = {}  # a core Container, strict
    assert _errors(runtime)
    isvc = copy.deepcopy(one("InferenceService"))
    isvc["spec"]["predictor"]["minReplicas"] = "1"
    assert _errors(isvc)
    bento = copy.deepcopy(one("BentoDeployment"))
    bento["spec"]["envs"][0]["valeu"] = "x"
    assert _errors(bento)
    deployment = copy.deepcopy(one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_the_deploy_folder_is_what_the_readme_lists() -> None:
    readme = (DEPLOY.parent.parent / "README.md").read_text()
    for path in yaml_files():
        assert str(path.relative_to(DEPLOY.parent.parent)) in readme, path
