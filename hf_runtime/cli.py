"""KServe `huggingfaceserver` command line, mapped onto hf-runtime's configuration.

`python -m hf_runtime --model_dir /mnt/models --model_name m --task fill_mask --http_port 8080`
takes the flags a KServe ServingRuntime passes, validates them through the same config model
and runs `bentoml serve` with them as `--arg`s; `--grpc_port` sets the Open Inference Protocol
gRPC port (KServe's flag, default 8081). KServe server flags that have no meaning here (workers,
logging, gRPC message limits) are accepted with a warning naming them; anything else is an
error (KServe silently drops unknown flags). vLLM's `--tool-call-parser NAME` sets
generation.tool_call_parser; `--enable-auto-tool-choice` is accepted beside it (a configured
parser is what enables tool_choice "auto" here) and refused without it, as vLLM does.
vLLM's `--override-generation-config '{"temperature": 0.2}'` sets generation.sampling_defaults
and `--default-max-tokens N` generation.default_max_tokens; `--reasoning-parser NAME` sets
generation.reasoning_parser.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from hf_runtime.config import REPO_ROOT, ConfigError, load_config

logger = logging.getLogger("hf_runtime")

_BOOL_FLAGS = [
    "disable_lower_case", "disable_special_tokens", "trust_remote_code", "return_token_type_ids",
    "return_probabilities", "return_raw_logits", "disable_postprocess", "return_offsets_mapping",
    "disable_log_requests", "auto_truncate",
]  # fmt: skip
_VALUE_FLAGS = [
    "model_name", "model_id", "model_dir", "gguf_file", "model_revision", "tokenizer_revision",
    "dtype", "task", "backend", "max_model_len", "tensor_input_names", "max_log_len",
    "grpc_port", "generation_config", "tool_call_parser", "reasoning_parser", "model_repository",
    "model_repository_load", "override_generation_config", "default_max_tokens",
]  # fmt: skip
# KServe ModelServer flags without an equivalent here: accepted so ServingRuntime args work.
_IGNORED_KSERVE_FLAGS = [
    "workers", "max_threads", "max_asyncio_workers", "enable_grpc",
    "enable_docs_url", "enable_latency_logging", "configure_logging", "log_config_file",
    "access_log_format", "event_loop", "timeout_keep_alive", "predictor_host",
    "predictor_protocol", "predictor_use_ssl", "predictor_request_timeout_seconds",
    "predictor_request_retries", "enable_predictor_health_check",
    "grpc_max_send_message_length", "grpc_max_receive_message_length",
]  # fmt: skip


def _flag_names(name: str) -> list[str]:
    dashed = name.replace("_", "-")
    return [f"--{name}"] + ([f"--{dashed}"] if dashed != name else [])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hf_runtime",
        description="Serve a Hugging Face model with KServe huggingfaceserver's flags.",
    )
    parser.add_argument("--http_port", "--http-port", type=int, default=8080)
    # KServe's server binds every interface (a pod's port is only reachable through its
    # Service); HF_RUNTIME_HOST=127.0.0.1 keeps a laptop run local.
    parser.add_argument("--host", default=os.environ.get("HF_RUNTIME_HOST") or "0.0.0.0")
    parser.add_argument("--config", help="YAML config file (instead of model flags)")
    parser.add_argument("--max_length", type=int, help="deprecated alias of --max_model_len")
    for flag in _VALUE_FLAGS:
        parser.add_argument(*_flag_names(flag), dest=flag)
    for flag in _BOOL_FLAGS:
        parser.add_argument(*_flag_names(flag), dest=flag, action="store_true", default=None)
    for flag in _IGNORED_KSERVE_FLAGS:
        parser.add_argument(*_flag_names(flag), dest=f"ignored_{flag}", default=None)
    # vLLM's pair: here a configured parser is what enables "auto" (no flag of its own).
    parser.add_argument(
        *_flag_names("enable_auto_tool_choice"), dest="enable_auto_tool_choice",
        action="store_true",
    )  # fmt: skip
    return parser


def args_to_config_args(ns: argparse.Namespace) -> dict[str, str]:
    """The flags that were given, as `bentoml serve --arg` strings."""
    values: dict[str, str] = {}
    for flag in [*_VALUE_FLAGS, *_BOOL_FLAGS, "max_length", "config"]:
        value = getattr(ns, flag, None)
        if value is not None:
            values[flag] = "true" if value is True else str(value)
    return values


def serve_command(argv: Sequence[str]) -> list[str]:
    """Parse KServe flags, validate them, and return the `bentoml serve` command to run."""
    ns = build_parser().parse_args(list(argv))
    for flag in _IGNORED_KSERVE_FLAGS:
        if getattr(ns, f"ignored_{flag}") is not None:
            logger.warning("--%s is a KServe server flag with no effect in hf-runtime", flag)
    config_args = args_to_config_args(ns)
    if ns.enable_auto_tool_choice and ns.tool_call_parser is None:
        raise ConfigError("--enable-auto-tool-choice requires --tool-call-parser (as in vLLM)")
    load_config(args=config_args)  # fail here, with the key named, before starting a server
    command = [
        sys.executable, "-m", "bentoml", "serve", "service:HFRuntime",
        "--working-dir", str(REPO_ROOT), "--host", ns.host, "--port", str(ns.http_port),
    ]  # fmt: skip
    for key, value in config_args.items():
        command += ["--arg", f"{key}={value}"]
    return command


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        command = serve_command(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    os.execv(command[0], command)
