"""configs/deploy/ read as the platforms would run it, for tests/deploy.

A `Workload` is one hf-runtime container as its platform starts it: the environment it gets
(the image's bentofile envs, then the manifest's; secrets resolved from secret.example.yaml),
the `python -m hf_runtime` arguments when it has any (KServe merges the runtime's args with the
InferenceService's), its ports, probes, grace period and GPUs. Tests hand these to the
runtime's own CLI and configuration loader, so a manifest cannot drift from what the runtime
accepts.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from hf_runtime.config import REPO_ROOT

DEPLOY = REPO_ROOT / "configs" / "deploy"
SCHEMAS = Path(__file__).parent / "schemas"
# BentoML images hold the Bento at $BENTO_PATH=/home/bentoml/bento, its source under src/.
IMAGE_SRC = PurePosixPath("/home/bentoml/bento/src")
K8S_DEFAULT_GRACE_SECONDS = 30
CORE_KINDS = {
    "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret",
    "ConfigMap",
}  # fmt: skip
CUSTOM_SCHEMAS = {
    "ServingRuntime": "kserve.json",
    "ClusterServingRuntime": "kserve.json",
    "InferenceService": "kserve.json",
    "BentoRequest": "yatai.json",
    "BentoDeployment": "yatai.json",
}
K8S_VERSIONS = ("1.30", "1.37")  # the oldest Kubernetes these target, and the newest schemas


@dataclass(frozen=True)
class Doc:
    path: Path
    index: int
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(DEPLOY)}#{self.index}"

    @property
    def kind(self) -> str | None:
        return self.body.get("kind")


def yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


@cache
def documents() -> tuple[Doc, ...]:
    docs = []
    for path in yaml_files():
        for index, body in enumerate(yaml.safe_load_all(path.read_text())):
            docs.append(Doc(path, index, body))
    return tuple(docs)


def kube_documents() -> list[Doc]:
    return [d for d in documents() if "apiVersion" in d.body and "kind" in d.body]


def of_kind(kind: str) -> list[Doc]:
    return [d for d in kube_documents() if d.kind == kind]


def one(kind: str) -> dict[str, Any]:
    (doc,) = of_kind(kind)
    return doc.body


def bentocloud_files() -> list[Path]:
    return sorted((DEPLOY / "bentocloud").glob("*.yaml"))


# ------------------------------------------------------------------ schemas


@cache
def k8s_definitions(version: str = K8S_VERSIONS[-1]) -> dict[str, Any]:
    """kubernetes-validate's strict core definitions (read from the installed package)."""
    from kubernetes_validate.utils import schema_contents

    return schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )


def custom_validator(kind: str) -> Any:
    """A validator for a KServe/Yatai kind: the hand-made schema, core types from
    kubernetes-validate."""
    import jsonschema
    from referencing import Registry, Resource

    schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[kind]).read_text())
    registry = Registry().with_resources(
        [
            (schema["$id"], Resource.from_contents(schema)),
            (k8s_definitions()["$id"], Resource.from_contents(k8s_definitions())),
        ]
    )
    root = {"$ref": f"{schema['$id']}#/$defs/{kind}"}
    return jsonschema.Draft202012Validator(root, registry=registry)


# ------------------------------------------------------------------ bentofiles and service.py


@cache
def bentofile(name: str) -> dict[str, Any]:
    """bentofile.yaml (`hf-runtime`) or configs/deploy/bentofile-vllm.yaml, by Bento name."""
    for path in (REPO_ROOT / "bentofile.yaml", DEPLOY / "bentofile-vllm.yaml"):
        data = yaml.safe_load(path.read_text())
        if data["name"] == name:
            return data
    raise KeyError(name)


def image_bento(image_or_bento: str) -> str:
    """The Bento an image or Bento tag is built from (registry/hf-runtime-vllm:0.1.0 ->
    hf-runtime-vllm)."""
    return image_or_bento.rsplit("/", 1)[-1].split(":", 1)[0]


@cache
def service_decorator() -> dict[str, Any]:
    """The literal keyword arguments of @bentoml.service in service.py (name, traffic)."""
    tree = ast.parse((REPO_ROOT / "service.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "service":
            values = {}
            for keyword in node.keywords:
                try:
                    values[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    continue  # computed at import (resources)
            return values
    raise AssertionError("no @bentoml.service in service.py")


def in_repo(path: str) -> str:
    """A path inside the image's Bento source, as the same path in this checkout."""
    pure = PurePosixPath(path)
    if pure.is_absolute():
        if pure.is_relative_to(IMAGE_SRC):
            return str(REPO_ROOT / pure.relative_to(IMAGE_SRC))
        return path
    return str(REPO_ROOT / pure)  # relative to the Bento's source, where the image serves it


# ------------------------------------------------------------------ workloads


@cache
def example_secrets() -> dict[tuple[str, str], str]:
    values = {}
    for body in (d.body for d in of_kind("Secret")):
        for key, value in body.get("stringData", {}).items():
            values[(body["metadata"]["name"], key)] = value
    return values


@dataclass
class Workload:
    name: str
    bento: str  # the Bento the image is built from
    env: dict[str, str]  # manifest env, secrets resolved; before the image's envs
    argv: list[str] | None = None  # `python -m hf_runtime` arguments; None: `bentoml serve`
    ports: dict[str, int] = field(default_factory=dict)  # "http" / "grpc" -> container port
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    grace_seconds: int | None = None  # None: the platform's own
    prestop_sleep: int = 0
    gpus: int = 0
    secret_files: dict[str, str] = field(default_factory=dict)  # path in container -> content
    concurrency: int | None = None  # BentoCloud's autoscaling target per replica
    container: dict[str, Any] = field(default_factory=dict)

    def image_env(self) -> dict[str, str]:
        """Every variable the process sees: the image's (bentofile envs), then the manifest's."""
        env = {e["name"]: str(e.get("value", "")) for e in bentofile(self.bento).get("envs", [])}
        return {**env, **self.env}

    def runtime_env(self, tmp_path: Path) -> dict[str, str]:
        """image_env with paths mapped into this checkout and mounted secrets written out."""
        env = self.image_env()
        for path, content in self.secret_files.items():
            local = tmp_path / PurePosixPath(path).relative_to("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(content)
        for key in ("HF_RUNTIME_CONFIG",):
            if key in env:
                env[key] = in_repo(env[key])
        if "HF_RUNTIME_API_KEY_FILE" in env:
            path = env["HF_RUNTIME_API_KEY_FILE"]
            assert path in self.secret_files, f"{self.name}: {path} is not a mounted secret"
            env["HF_RUNTIME_API_KEY_FILE"] = str(tmp_path / PurePosixPath(path).relative_to("/"))
        return {k: v for k, v in env.items() if k.startswith("HF_RUNTIME_")}


def _env(items: list[dict[str, Any]]) -> dict[str, str]:
    env = {}
    for item in items:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        secret = example_secrets().get((ref["name"], ref["key"]))
        assert secret is not None or ref.get("optional"), f"{item['name']}: no such secret"
        if secret is not None:
            env[item["name"]] = secret
    return env


def _ports(container: dict[str, Any]) -> dict[str, int]:
    ports = {}
    for port in container.get("ports", []):
        kind = "grpc" if "grpc" in port["name"] or port["name"] == "h2c" else "http"
        ports[kind] = port["containerPort"]
    return ports


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: container[f"{name}Probe"]
        for name in ("startup", "readiness", "liveness")
        if f"{name}Probe" in container
    }


def _gpus(resources: dict[str, Any]) -> int:
    limits = resources.get("limits", {})
    return int(limits.get("nvidia.com/gpu", limits.get("gpu", 0)))


def _secret_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    files = {}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if not secret:
            continue
        items = secret.get("items") or [
            {"key": key, "path": key}
            for (name, key) in example_secrets()
            if name == secret["secretName"]
        ]
        for item in items:
            content = example_secrets()[(secret["secretName"], item["key"])]
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = content
    return files


def kubernetes_workloads() -> list[Workload]:
    workloads = []
    for doc in of_kind("Deployment"):
        pod = doc.body["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        prestop = container.get("lifecycle", {}).get("preStop", {})
        workloads.append(
            Workload(
                name=doc.id,
                bento=image_bento(container["image"]),
                env=_env(container.get("env", [])),
                ports=_ports(container),
                probes=_probes(container),
                grace_seconds=pod.get("terminationGracePeriodSeconds", K8S_DEFAULT_GRACE_SECONDS),
                prestop_sleep=prestop.get("sleep", {}).get("seconds", 0),
                gpus=_gpus(container.get("resources", {})),
                secret_files=_secret_files(pod, container),
                container=container,
            )
        )
    return workloads


def kserve_workloads() -> list[Workload]:
    """Each ServingRuntime/ClusterServingRuntime with each InferenceService that names it, merged
    the way KServe merges them: runtime args with {{.Name}} filled in, then the model's args;
    runtime env, then the model's; the model's resources over the runtime's."""
    workloads = []
    for runtime in of_kind("ServingRuntime") + of_kind("ClusterServingRuntime"):
        (container,) = runtime.body["spec"]["containers"]
        for isvc in of_kind("InferenceService"):
            predictor = isvc.body["spec"]["predictor"]
            model = predictor["model"]
            if model.get("runtime") != runtime.body["metadata"]["name"]:
                continue
            name = isvc.body["metadata"]["name"]
            args = [arg.replace("{{.Name}}", name) for arg in container.get("args", [])]
            resources = model.get("resources") or container.get("resources", {})
            workloads.append(
                Workload(
                    name=f"{runtime.id}+{isvc.id}",
                    bento=image_bento(model.get("image", container["image"])),
                    env={**_env(container.get("env", [])), **_env(model.get("env", []))},
                    argv=[*args, *model.get("args", [])],
                    ports=_ports(container),
                    probes=_probes(container),
                    grace_seconds=predictor.get(
                        "terminationGracePeriodSeconds", K8S_DEFAULT_GRACE_SECONDS
                    ),
                    gpus=_gpus(resources),
                    container=container,
                )
            )
    return workloads


def yatai_workloads() -> list[Workload]:
    requests = {d.body["metadata"]["name"]: d.body for d in of_kind("BentoRequest")}
    workloads = []
    for doc in of_kind("BentoDeployment"):
        spec = doc.body["spec"]
        tag = requests[spec["bento"]]["spec"]["bentoTag"]
        workloads.append(
            Workload(
                name=doc.id,
                bento=image_bento(tag),
                env=_env(spec.get("envs", [])),
                grace_seconds=K8S_DEFAULT_GRACE_SECONDS,  # BentoDeployment cannot change it
                gpus=_gpus(spec.get("resources", {})),
            )
        )
    return workloads


def bentocloud_workloads() -> list[Workload]:
    workloads = []
    for path in bentocloud_files():
        config = yaml.safe_load(path.read_text())
        for service in config["services"].values():
            match = re.fullmatch(r"gpu\.[a-z0-9-]+\.(\d+)", service["instance_type"])
            traffic = service.get("config_overrides", {}).get("traffic", {})
            workloads.append(
                Workload(
                    name=str(path.relative_to(DEPLOY)),
                    bento=image_bento(config["bento"]),
                    env=_env(config.get("envs", [])),
                    gpus=int(match.group(1)) if match else 0,
                    concurrency=traffic.get("concurrency"),
                )
            )
    return workloads


def all_workloads() -> list[Workload]:
    return kubernetes_workloads() + kserve_workloads() + yatai_workloads() + bentocloud_workloads()
