"""Fixtures for the benchmark harness tests: a fake server and a tiny encoder."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.benchmarks.fake_server import make_fake_app


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    """The fake app under uvicorn on a free loopback port, in a background thread."""
    import uvicorn

    # Bound here and handed over: a port picked free and bound later can be taken meanwhile.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_fake_app(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the tiny BERT encoder (faster than building every tiny model)."""
    from tests.tiny_models import build_bert_embed

    out = tmp_path_factory.mktemp("bench-tiny") / "bert-embed"
    out.mkdir()
    build_bert_embed(out)
    return out
