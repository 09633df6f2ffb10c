"""The onnxruntime backend's selection, configuration, export cache and shipped ONNX files."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from hf_runtime.backends.onnxruntime import BACKEND
from hf_runtime.backends.onnxruntime import export as export_module
from hf_runtime.backends.onnxruntime.encoder_backend import load_onnx_encoder
from hf_runtime.backends.registry import validate_backend_sections
from hf_runtime.backends.selection import select_backend
from hf_runtime.config import ModelConfig
from hf_runtime.errors import ConfigError
from hf_runtime.sources import CACHE_ENV, ResolvedSource
from hf_runtime.tasks.registry import Task
from tests.backends.onnxruntime.conftest import requires_onnxruntime
from tests.encoder_support import model_config, source_for

pytestmark = requires_onnxruntime


def test_auto_never_picks_onnxruntime() -> None:
    source = ResolvedSource(Path("/m"), Path("/m"), {"architectures": ["BertModel"]})
    for task in (Task.text_embedding, Task.sequence_classification, Task.rerank):
        backend, _ = select_backend(ModelConfig(model_dir="/m"), source, task)
        assert backend != "onnxruntime"
        assert "opt-in" in str(BACKEND.auto_declines(task))
    chosen = select_backend(ModelConfig(model_dir="/m", backend="onnxruntime"), source, task)
    assert chosen == ("onnxruntime", "backend: onnxruntime is configured")


def test_generative_tasks_and_bad_settings_are_config_errors() -> None:
    source = ResolvedSource(Path("/m"), Path("/m"), {"architectures": ["GPT2LMHeadModel"]})
    config = ModelConfig(model_dir="/m", backend="onnxruntime")
    with pytest.raises(ConfigError, match="encoder tasks only"):
        select_backend(config, source, Task.text_generation)
    bad = [
        ({"onnxruntime": {"graph_optimisation": "all"}}, "onnxruntime.graph_optimisation"),
        ({"onnxruntime": {"graph_optimization_level": "max"}}, "graph_optimization_level"),
        ({"onnxruntime": {"intra_op_threads": 0}}, "intra_op_threads"),
        ({"onnxruntime": {"allow_spinning": "sometimes"}}, "allow_spinning"),
        ({"backend": "onnxruntime", "dtype": "float16"}, "dtype: float16 is not available"),
    ]
    for values, message in bad:
        with pytest.raises(ConfigError, match=message):
            validate_backend_sections(ModelConfig(model_dir="/m", **values))
    with pytest.raises(ValueError, match="valid dictionary"):  # the schema's own check
        ModelConfig(model_dir="/m", onnxruntime="all")


def test_session_options() -> None:
    from hf_runtime.backends.onnxruntime.config import parse_onnxruntime_section
    from hf_runtime.backends.onnxruntime.session import session_options

    default = session_options(parse_onnxruntime_section(None))
    assert default.inter_op_num_threads == 1
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    section = {"allow_spinning": True, "intra_op_threads": 3, "graph_optimization_level": "basic"}
    chosen = session_options(parse_onnxruntime_section(section))
    assert chosen.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert chosen.intra_op_num_threads == 3
    assert str(chosen.graph_optimization_level).endswith("ORT_ENABLE_BASIC")


def test_the_export_is_cached_and_reused(
    tiny_models: dict[str, Path], onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_models["bert-seq-cls"]
    config = model_config(path, backend="onnxruntime")
    first = load_onnx_encoder(config, source_for(path), Task.sequence_classification)
    assert first.onnx_file.path.is_relative_to(onnx_cache / "onnx")
    key = json.loads((first.onnx_file.path.parent / "key.json").read_text())
    assert key["opset"] == "17" and key["weights"].startswith("sha256 ")
    assert {"onnxruntime", "torch", "transformers", "exporter", "head"} <= set(key)

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(export_module, "export_encoder", no_export)
    monkeypatch.setattr(export_module, "_hash_files", no_export)  # the sha256 is remembered
    again = load_onnx_encoder(config, source_for(path), Task.sequence_classification)
    assert again.onnx_file.path == first.onnx_file.path
    assert again.onnx_file.origin.startswith("the cached export")


def test_the_weights_sha256_is_remembered_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart reads no weights: the sha256 is read back while every file keeps its path,
    size, times and inode; a file rewritten in place (even with its mtime put back), added or
    removed gives a new key, equal to a fresh hash."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    weights = model / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    (model / "README.md").write_text("not hashed")
    hashed: list[list[str]] = []
    real_hash = export_module._hash_files

    def counting(files: list[Path]) -> str:
        hashed.append([path.name for path in files])
        return real_hash(files)

    monkeypatch.setattr(export_module, "_hash_files", counting)
    first = export_module.weights_fingerprint(model)
    assert export_module.weights_fingerprint(model) == first
    assert hashed == [["config.json", "model.safetensors"]]

    stat = weights.stat()
    time.sleep(0.05)  # past the file system's timestamp tick, so the rewrite moves the ctime
    weights.write_bytes(b"b" * 1000)  # same size, mtime restored as `cp -p` would
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = export_module.weights_fingerprint(model)
    assert changed != first and len(hashed) == 2
    assert changed == f"sha256 {real_hash([model / 'config.json', weights])}"
    (model / "extra.bin").write_bytes(b"c")
    assert export_module.weights_fingerprint(model) not in (first, changed)
    (model / "extra.bin").unlink()
    assert export_module.weights_fingerprint(model) == changed and len(hashed) == 4

    monkeypatch.setenv(CACHE_ENV, str(model / "config.json"))  # no cache folder can be made
    assert export_module.weights_fingerprint(model) == changed and len(hashed) == 5
    snapshot = tmp_path / "snapshots" / ("0" * 40)
    shutil.copytree(model, snapshot)
    assert export_module.weights_fingerprint(snapshot) == f"revision {'0' * 40}"
    assert len(hashed) == 5


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    built: list[Path] = []

    def build(target: Path) -> None:
        time.sleep(0.2)
        built.append(target)
        target.write_text("model")

    folder = tmp_path / "m-key"
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(export_module.cached_build(folder, "f", {}, build))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and results == [folder / "f"] * 3
    assert (folder / "f").read_text() == "model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-key", "m-key.lock"]  # no staging


def test_a_shipped_onnx_file_is_used(
    tiny_models: dict[str, Path],
    tmp_path: Path,
    onnx_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exported = load_onnx_encoder(
        model_config(tiny_models["bert-embed"], backend="onnxruntime"),
        source_for(tiny_models["bert-embed"]),
        Task.text_embedding,
    ).onnx_file.path
    folder = tmp_path / "shipped"
    shutil.copytree(tiny_models["bert-embed"], folder)
    (folder / "onnx").mkdir()
    shutil.copy(exported, folder / "onnx" / "model.onnx")
    monkeypatch.setattr(export_module, "export_encoder", None)  # must not be called
    config = model_config(folder, backend="onnxruntime")
    backend = load_onnx_encoder(config, source_for(folder), Task.text_embedding)
    assert backend.onnx_file.path == folder / "onnx" / "model.onnx"
    assert backend.onnx_file.origin == "the checkpoint's onnx/model.onnx"

    # The same file cannot serve a classification head (no logits output).
    missing = model_config(folder, backend="onnxruntime", onnxruntime={"model_file": "x.onnx"})
    with pytest.raises(ConfigError, match="no x.onnx in the model"):
        load_onnx_encoder(missing, source_for(folder), Task.text_embedding)
    wrong = model_config(
        folder, backend="onnxruntime", onnxruntime={"model_file": "onnx/model.onnx"}
    )
    with pytest.raises(ConfigError, match="no logits output"):
        load_onnx_encoder(wrong, source_for(folder), Task.sequence_classification)
