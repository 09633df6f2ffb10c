"""Infinity (infinity-emb), the embedding server many CPU users pick, as a peer.

Installed by the benchmark into a virtual environment of its own (never this one: it pins
older transformers and sentence-transformers), once, under the runtime's cache folder:
torch==2.13.0 (so pip takes the same CPU build as hf-runtime's, from the local wheels where
the machine has them) and infinity-emb[server,torch]==0.0.78. It serves the same MiniLM
folder by its local path with its defaults (torch engine, batch size 32, warm-up), OpenAI's
`/embeddings` route. Its own ONNX engine (optimum) does not load with current optimum, so the
torch engine is the one measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

INFINITY_VERSION = "0.0.78"
TORCH_PIN = "torch==2.13.0"
PACKAGES = (TORCH_PIN, f"infinity-emb[server,torch]=={INFINITY_VERSION}")
MODEL_NAME = "minilm"
EMBEDDINGS_PATH = "/embeddings"
READY_PATH = "/health"
# Its telemetry off, no Hub access (the model is a local folder).
ENV = {"INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
INSTALL_TIMEOUT_S = 1800
# Its batch handler's threads (tokenize, forward, postprocess), for the CPU breakdown: a
# ThreadPoolExecutor's (Python names them ThreadPoolExecutor-N_M).
INFERENCE_THREADS = ("ThreadPoolExecutor",)


def default_venv() -> Path:
    cache = os.environ.get("HF_RUNTIME_CACHE_DIR") or Path.home() / ".cache" / "hf-runtime"
    return Path(cache) / f"bench-infinity-{INFINITY_VERSION}"


def install_infinity(venv: Path) -> str | None:
    """Create the venv and install Infinity into it once; None when it is ready, else why
    not (the failing command and the end of its output)."""
    marker = venv / ".installed"
    if marker.is_file():
        return None
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PACKAGES],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(step)}` failed: {exc}"
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-1500:]
            return f"`{' '.join(step)}` exited {done.returncode}: {output}"
    marker.write_text(json.dumps({"packages": PACKAGES}) + "\n")
    return None


def infinity_command(venv: Path, model_dir: Path) -> Callable[[int], list[str]]:
    """`infinity_emb v2` on loopback serving `model_dir` as MODEL_NAME, its defaults otherwise."""

    def command(port: int) -> list[str]:
        return [
            str(venv / "bin" / "infinity_emb"), "v2", "--model-id", str(model_dir),
            "--served-model-name", MODEL_NAME, "--engine", "torch", "--device", "cpu",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ]  # fmt: skip

    return command


def embeddings_body(text: str) -> bytes:
    return json.dumps({"model": MODEL_NAME, "input": [text]}).encode()
