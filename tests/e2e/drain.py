"""The SIGTERM check both backends' end-to-end tests run: a stream in flight finishes, new
requests get 503 meanwhile, readiness turns false, and the server exits by itself."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Mapping

import httpx

from tests.e2e.server import ServedProcess
from tests.e2e.waits import wait_until


def assert_sigterm_drains(
    served: ServedProcess, model: str, headers: Mapping[str, str] | None = None
) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Count to 50."}],
            "stream": True, "max_tokens": 40, "min_tokens": 40}  # fmt: skip
    finish = None
    with (
        httpx.Client(base_url=served.url, headers=headers, timeout=120) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as stream,
    ):
        lines = stream.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        # What Kubernetes does: SIGTERM to the container's main process only.
        os.kill(served.process.pid, signal.SIGTERM)
        with httpx.Client(base_url=served.url, headers=headers, timeout=10) as other:
            # The supervisor passes the signal on to the worker: on a loaded machine a fixed
            # second is not always enough. Readiness turns false when the worker drains.
            wait_until(lambda: other.get("/readyz").status_code != 200, "the worker drains")
            refused = other.post(f"/v1/models/{model}:predict", json={"instances": ["x"]})
            assert refused.status_code == 503, refused.text
            assert "shutting down" in refused.json()["error"]
            assert other.get("/readyz").status_code == 503
            assert other.get("/v2/health/ready").status_code == 503
            assert other.get("/livez").status_code == 200
        for line in lines:
            if line.startswith("data: {"):
                choice = json.loads(line[6:])["choices"][0]
                finish = choice["finish_reason"] or finish
    assert finish == "length", served.log()[-3000:]
    served.process.wait(timeout=90)  # exits by itself once drained
    assert "drained: no request in flight" in served.log()
