"""`python -m hf_runtime` takes KServe huggingfaceserver's flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hf_runtime.cli import serve_command


def args_of(command: list[str]) -> dict[str, str]:
    pairs = [command[i + 1] for i, part in enumerate(command) if part == "--arg"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_kserve_flags_map_to_bentoml_serve() -> None:
    command = serve_command(
        [
            "--model_dir", "/mnt/models", "--model_name", "bert", "--task", "fill_mask",
            "--return_probabilities", "--http_port", "8081", "--max-log-len", "10",
            "--disable_lower_case", "--tensor_input_names", "input_ids,attention_mask",
        ]
    )  # fmt: skip
    assert command[1:5] == ["-m", "bentoml", "serve", "service:HFRuntime"]
    assert command[command.index("--port") + 1] == "8081"
    assert args_of(command) == {
        "model_dir": "/mnt/models",
        "model_name": "bert",
        "task": "fill_mask",
        "return_probabilities": "true",
        "max_log_len": "10",
        "disable_lower_case": "true",
        "tensor_input_names": "input_ids,attention_mask",
    }


def test_kserve_server_flags_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    command = serve_command(["--model_id", "org/m", "--enable_grpc", "false", "--workers", "2"])
    assert args_of(command) == {"model_id": "org/m"}
    assert "--enable_grpc is a KServe server flag" in caplog.text


def test_invalid_values_fail_before_serving() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hf_runtime", "--model_dir", "/m", "--dtype", "fp8"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "dtype" in result.stderr and "'bfloat16'" in result.stderr


def test_unknown_flags_are_errors() -> None:
    with pytest.raises(SystemExit):
        serve_command(["--model_dir", "/m", "--use_id2label"])
