"""The manifests fit the runtime they deploy, checked with the runtime's own code.

Every container's arguments go through hf_runtime.cli (build_parser / serve_command) and every
environment through hf_runtime.config.load_config, as the process in the pod would; every
HF_RUNTIME_* name is one the configuration model knows; probes hit the routes the gateway keeps
open without a key; ports are the ones the service listens on; the grace period covers the
drain; GPUs match tensor_parallel_size; the autoscaler's metrics are metrics /metrics exports.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from hf_runtime import config as runtime_config
from hf_runtime.cli import build_parser, serve_command
from hf_runtime.config import ALL_FLAGS, ENV_PREFIX, RuntimeConfig, ServerConfig, load_config
from hf_runtime.protocols.gateway import PROBE_PATHS
from tests.deploy.manifests import (
    Workload,
    all_workloads,
    bentocloud_files,
    bentocloud_workloads,
    example_secrets,
    kserve_workloads,
    kube_documents,
    kubernetes_workloads,
    of_kind,
    one,
)

WORKLOADS = all_workloads()
POD_WORKLOADS = [w for w in WORKLOADS if w.ports]  # the ones whose container spec we write
KNOWN_ENV = {ENV_PREFIX + flag.upper() for flag in ALL_FLAGS} | runtime_config._NON_FLAG_ENV


def ids(workload: Workload) -> str:
    return workload.name


def resolve(workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuntimeConfig:
    """The configuration the pod's process ends up with (CLI arguments included)."""
    env = workload.runtime_env(tmp_path)
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if workload.argv is None:
        return load_config(env=env)
    command = serve_command(workload.argv)  # what `python -m hf_runtime` would exec
    rest = command[command.index("--port") + 2 :]
    assert rest[::2] == ["--arg"] * (len(rest) // 2)
    return load_config(args=dict(a.split("=", 1) for a in rest[1::2]), env=env)


def test_every_platform_has_a_workload() -> None:
    assert len(kubernetes_workloads()) == 1
    assert len(kserve_workloads()) == 2  # the ServingRuntime and the ClusterServingRuntime
    assert len(bentocloud_workloads()) == 2
    assert len(WORKLOADS) == 6


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids)
def test_env_names_exist_in_the_config_model(workload: Workload) -> None:
    names = {n for n in workload.image_env() if n.startswith(ENV_PREFIX)}
    assert names <= KNOWN_ENV, sorted(names - KNOWN_ENV)


def test_secrets_are_never_literal_values() -> None:
    """HF_TOKEN and API keys come from Secrets (BentoCloud: `secrets:`), never from a value."""
    for doc in kube_documents():
        for item in env_lists(doc.body):
            if item["name"] in ("HF_TOKEN", "HF_RUNTIME_API_KEY"):
                assert "value" not in item and "secretKeyRef" in item["valueFrom"], doc.id
    for path in bentocloud_files():
        config = yaml.safe_load(path.read_text())
        assert config["secrets"] and config["access_authorization"] is True
        names = {e["name"] for e in config["envs"]}
        assert not names & {"HF_TOKEN", "HF_RUNTIME_API_KEY", "HF_RUNTIME_API_KEY_FILE"}


def env_lists(node: object) -> list[dict]:
    """Every item of every `env:` / `envs:` list in a manifest."""
    found: list[dict] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("env", "envs") and isinstance(value, list):
                found += value
            else:
                found += env_lists(value)
    elif isinstance(node, list):
        for value in node:
            found += env_lists(value)
    return found


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids)
def test_the_runtime_accepts_each_configuration(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hf_runtime.backends.registry import validate_backend_sections

    config = resolve(workload, tmp_path, monkeypatch)
    (model,) = config.models  # one model per deployment, named for its clients
    assert model.model_name != "model" or workload.argv
    assert model.task is not None and model.backend != "auto"
    validate_backend_sections(model)
    if model.model_id:  # pinned, as configs/*.yaml are: every replica serves the same weights
        assert model.model_revision and len(model.model_revision) == 40


@pytest.mark.parametrize("workload", kserve_workloads(), ids=ids)
def test_kserve_args_parse_with_the_runtime_cli(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KServe's own flags through `python -m hf_runtime`: the storage initializer's /mnt/models
    is served under the InferenceService's name, on the ports the container declares."""
    container = workload.container
    assert container["command"] == ["python", "-m", "hf_runtime"]
    assert container["workingDir"] == "/home/bentoml/bento/src"  # where hf_runtime imports from
    config = resolve(workload, tmp_path, monkeypatch)  # sets the container's environment
    ns = build_parser().parse_args(workload.argv)
    command = serve_command(workload.argv)
    assert command[command.index("--port") + 1] == str(ns.http_port) == str(workload.ports["http"])
    assert config.server.grpc_port == workload.ports["grpc"]
    (model,) = config.models
    isvc = one("InferenceService")
    assert isvc["spec"]["predictor"]["model"]["storageUri"].startswith("hf://")
    assert model.model_dir == "/mnt/models"  # KServe's storage-initializer path
    assert model.model_name == isvc["metadata"]["name"]


def test_an_inference_service_with_model_id_needs_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KServe users who pass --model_id (no storageUri) keep their args: it replaces the
    runtime's /mnt/models default instead of conflicting with it."""
    (workload, _) = kserve_workloads()
    workload.argv = [
        *workload.argv,
        "--model_name=bert",
        "--model_id=google-bert/bert-base-uncased",
    ]
    (model,) = resolve(workload, tmp_path, monkeypatch).models
    assert (model.model_name, model.model_id, model.model_dir) == (
        "bert", "google-bert/bert-base-uncased", None,
    )  # fmt: skip


def test_both_kserve_runtimes_run_the_same_container() -> None:
    (namespaced,) = of_kind("ServingRuntime")
    (cluster,) = of_kind("ClusterServingRuntime")
    for key in ("containers", "volumes", "annotations", "protocolVersions"):
        assert namespaced.body["spec"][key] == cluster.body["spec"][key], key
    for body in (namespaced.body, cluster.body):
        (fmt,) = body["spec"]["supportedModelFormats"]
        assert fmt["name"] == "huggingface"
        assert {"v1", "v2", "grpc-v2"} <= set(body["spec"]["protocolVersions"])


@pytest.mark.parametrize("workload", POD_WORKLOADS, ids=ids)
def test_probes_and_ports_match_what_the_service_serves(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = resolve(workload, tmp_path, monkeypatch)
    assert workload.ports["grpc"] == config.server.grpc_port == ServerConfig().grpc_port
    if workload.argv is None:  # `bentoml serve` (the image's default command) on BentoML's port
        assert workload.ports["http"] == bentoml_default_port()
    paths = {name: probe["httpGet"]["path"] for name, probe in workload.probes.items()}
    assert paths == {"startup": "/readyz", "readiness": "/readyz", "liveness": "/livez"}
    assert set(paths.values()) <= PROBE_PATHS  # open even when API keys are required
    for probe in workload.probes.values():
        port = probe["httpGet"]["port"]
        assert port in ("http", workload.ports["http"]), port
        assert probe.get("timeoutSeconds", 1) >= 2  # /readyz does not answer during startup
    startup = workload.probes["startup"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # a model load


def bentoml_default_port() -> int:
    import importlib.resources

    path = importlib.resources.files("bentoml._internal.configuration.v2")
    defaults = yaml.safe_load((path / "default_configuration.yaml").read_text())
    return defaults["services"]["http"]["port"]


@pytest.mark.parametrize("workload", [w for w in WORKLOADS if w.grace_seconds], ids=ids)
def test_termination_grace_covers_the_drain(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drain = resolve(workload, tmp_path, monkeypatch).server.drain_timeout
    assert workload.grace_seconds is not None
    assert workload.grace_seconds >= workload.prestop_sleep + drain
    assert workload.grace_seconds > drain


@pytest.mark.parametrize("workload", WORKLOADS, ids=ids)
def test_gpus_match_tensor_parallel_size(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hf_runtime.runtime.server import Runtime

    config = resolve(workload, tmp_path, monkeypatch)
    vllm = [m for m in config.models if m.backend == "vllm"]
    if vllm:
        # what the service declares (resources.gpu) is what the pod or instance gets
        assert workload.gpus == Runtime.gpu_count.fget(SimpleNamespace(config=config))
        assert workload.bento == "hf-runtime-vllm"  # the image that has vLLM installed
    else:
        assert workload.gpus in (0, 1)  # the huggingface backend runs a model on one device


@pytest.mark.parametrize("workload", bentocloud_workloads(), ids=ids)
def test_bentocloud_concurrency_is_one_replica_capacity(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (model,) = resolve(workload, tmp_path, monkeypatch).models
    if model.task and model.task.value.endswith("generation"):
        capacity = (model.vllm or {}).get("max_num_seqs") or model.generation.max_num_seqs
    else:
        capacity = model.batching.max_batch_size
    assert workload.concurrency == capacity


def test_the_autoscaler_scales_on_exported_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hf_runtime.observability.metrics import PREFIX, STATE_FAMILIES

    gauges = {PREFIX + f.name for f in STATE_FAMILIES if f.kind == "gauge"}
    hpa = one("HorizontalPodAutoscaler")
    targets = {m["pods"]["metric"]["name"]: m["pods"]["target"] for m in hpa["spec"]["metrics"]}
    assert set(targets) == {"hf_runtime_requests_waiting", "hf_runtime_requests_running"}
    assert set(targets) <= gauges
    yatai = one("BentoDeployment")["spec"]["autoscaling"]["metrics"]
    assert {m["pods"]["metric"]["name"] for m in yatai} <= gauges
    # the Prometheus adapter publishes exactly these, per pod
    rules = yaml.safe_load(one("ConfigMap")["data"]["config.yaml"])["rules"]
    assert {r["name"]["as"] for r in rules} == set(targets)
    for rule in rules:
        assert rule["seriesQuery"].startswith(rule["name"]["as"] + "{")
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    # running sequences trigger before a pod is full
    (workload,) = kubernetes_workloads()
    (model,) = resolve(workload, tmp_path, monkeypatch).models
    capacity = (model.vllm or {}).get("max_num_seqs") or model.generation.max_num_seqs
    assert 0 < float(targets["hf_runtime_requests_running"]["averageValue"]) < capacity


def test_objects_point_at_each_other() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in deployment["spec"]  # the HPA owns it
    service = one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert named[port["targetPort"]] == port["port"]
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
    }  # fmt: skip
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # drains can proceed
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(named["http"])


def test_pods_run_as_the_image_user() -> None:
    """runAsNonRoot needs a numeric user (the image's USER is the name `bentoml`, uid 1034)."""
    pod = one("Deployment")["spec"]["template"]["spec"]
    runtime_containers = [c for k in ("ServingRuntime", "ClusterServingRuntime") for c in
                          one(k)["spec"]["containers"]]  # fmt: skip
    for context in [pod["securityContext"], *(c["securityContext"] for c in runtime_containers)]:
        if context.get("runAsNonRoot"):
            assert context["runAsUser"] == 1034


def test_the_example_api_key_is_a_valid_key_file(tmp_path: Path) -> None:
    content = example_secrets()[("hf-runtime-api-keys", "api-keys")]
    (tmp_path / "keys").write_text(content)
    assert ServerConfig(api_key_file=str(tmp_path / "keys")).read_api_keys()
    assert load_config(args={"model_dir": "/m", "api_key": content.strip()}, env={})
    assert example_secrets()[("hf-token", "HF_TOKEN")].startswith("hf_")


@pytest.mark.parametrize("workload", kubernetes_workloads() + kserve_workloads(), ids=ids)
def test_kubernetes_pods_exit_when_a_model_fails_to_load(
    workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliberate choice in the manifest, not the default: a pod whose model cannot load
    exits (CrashLoopBackOff, the reason in its log) rather than running unready forever."""
    assert "HF_RUNTIME_EXIT_ON_LOAD_FAILURE" in workload.env, workload.name
    assert resolve(workload, tmp_path, monkeypatch).server.exit_on_load_failure
