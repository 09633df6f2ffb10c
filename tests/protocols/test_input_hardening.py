"""Hostile JSON on every route: a 400 in the protocol's own shape, never a 500; large bodies are
decoded off the event loop; client text reaches the log bounded and on one line."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from hf_runtime.errors import InvalidInput
from hf_runtime.protocols import json_body, kserve_v1, kserve_v2
from hf_runtime.protocols.codecs import v2_json
from hf_runtime.protocols.json_body import LARGE_BODY_BYTES, JSONBodyError, JSONBodyRoute
from hf_runtime.protocols.openai import make_app as make_openai_app
from hf_runtime.protocols.openai.responses import log_ignored_fields
from hf_runtime.protocols.openai.schemas import CompletionRequest
from tests.protocols.conftest import make_fake_registry
from tests.protocols.openai.helpers import assert_error
from tests.served_app import make_served_app

USER = '[{"role": "user", "content": "Hi"}]'
TENSOR = '{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [@]}'

# A JSON literal per hostile value, and what the 400 must say about it.
HOSTILE: dict[str, tuple[str, str]] = {
    "5000-digit int": ("1" * 5000, "more than 40 digits"),
    "41-digit int": ("-" + "9" * 41, "more than 40 digits"),
    "NaN": ("NaN", "NaN is not valid JSON"),
    "Infinity": ("Infinity", "Infinity is not valid JSON"),
    "-Infinity": ("-Infinity", "-Infinity is not valid JSON"),
    "1e999": ("1e999", "range of a 64-bit float"),
    "-1e999": ("-1e999", "range of a 64-bit float"),
    "deep (inline)": ("[" * 5_000 + "]" * 5_000, "nested too deeply"),
    "deep (thread)": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}

# (route, body with @ where the hostile value goes, error shape)
ROUTES: list[tuple[str, str, str]] = [
    ("/v1/models/clf:predict", '{"instances": ["a"], "extra": @}', "kserve"),
    ("/v1/models/clf:predict", '{"instances": [@]}', "kserve"),
    ("/v2/models/clf/infer", '{"inputs": [' + TENSOR.replace("@", '"a"') + '], "id": @}', "kserve"),
    ("/v2/models/clf/infer", '{"inputs": [' + TENSOR + "]}", "kserve"),
    ("/v1/chat/completions", '{"model": "gpt", "messages": ' + USER + ', "top_p": @}', "openai"),
    ("/v1/chat/completions", '{"model": "gpt", "messages": ' + USER + ', "seed": @}', "openai"),
    ("/v1/completions", '{"model": "gpt", "prompt": "Hi", "max_tokens": @}', "openai"),
    ("/openai/v1/completions", '{"model": "gpt", "prompt": [@]}', "openai"),
    ("/v1/embeddings", '{"model": "embed", "input": "Hi", "dimensions": @}', "openai"),
    ("/v1/embeddings", '{"model": "embed", "input": [@]}', "openai"),
    ("/openai/v1/embeddings", '{"model": "embed", "input": "Hi", "unknown": @}', "openai"),
]


@pytest.fixture(scope="module")
def served() -> Iterator[TestClient]:
    app = make_served_app(make_fake_registry())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def assert_kserve_400(response: httpx.Response, contains: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert contains in body["error"], body


def post(client: TestClient, path: str, body: str | bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(("path", "template", "shape"), ROUTES)
@pytest.mark.parametrize("value", list(HOSTILE), ids=str)
def test_hostile_json_is_a_400_in_the_protocols_shape(
    served: TestClient, path: str, template: str, shape: str, value: str
) -> None:
    literal, reason = HOSTILE[value]
    response = post(served, path, template.replace("@", literal))
    if shape == "kserve":
        assert_kserve_400(response, reason)
    else:
        error = assert_error(response, 400, None, "Invalid JSON: request body is not valid JSON")
        assert reason in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "contains"),
    [
        ("/v1/models/clf:predict", b'{"instances": ["\xff"]}', "not UTF-8"),
        ("/v1/models/clf:predict", b'{"instances": ["a"]', "Unrecognized request format"),
        ("/v2/models/clf/infer", b'{"inputs": [\xff]}', "not UTF-8"),
    ],
)
def test_undecodable_bodies_are_kserve_400s(
    served: TestClient, path: str, body: bytes, contains: str
) -> None:
    assert_kserve_400(post(served, path, body), contains)


def test_openai_undecodable_body_is_a_400(served: TestClient) -> None:
    response = post(served, "/v1/chat/completions", b'{"model": "gpt", "messages": "\xff"}')
    assert_error(response, 400, None, "not UTF-8")


def test_40_digit_ints_reach_the_field_checks_that_name_the_field(served: TestClient) -> None:
    big = "9" * 40
    chat = '{"model": "gpt", "messages": ' + USER + ', "%s": %s}'
    assert_error(post(served, "/v1/chat/completions", chat % ("n", big)), 400, "n", "between 1")
    assert_error(post(served, "/v1/chat/completions", chat % ("seed", big)), 400, "seed", "64")
    tensor = '{"name": "x", "shape": [1], "datatype": "BYTES", "data": [' + big + "]}"
    assert_kserve_400(post(served, "/v2/models/clf/infer", '{"inputs": [' + tensor + "]}"), "BYTES")


@pytest.mark.parametrize("key", ["1" * 5000, "12345678901", "٣", "1\n", " 1"])
def test_logit_bias_keys_must_be_short_ascii_token_ids(served: TestClient, key: str) -> None:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}], "logit_bias": {key: 1}}
    error = assert_error(served.post("/v1/chat/completions", json=body), 400, "logit_bias", "ids")
    assert len(error["message"]) < 200  # the key is echoed bounded


def test_v2_json_tensor_elements_must_be_finite_and_fit_the_datatype() -> None:
    for datatype, value in [
        ("FP32", float("nan")),
        ("FP32", float("inf")),
        ("FP64", float("-inf")),
        ("FP32", 1e39),  # finite as a double, inf as a float32
        ("FP64", 10**400),  # an int no float can hold
        ("FP32", True),
    ]:
        with pytest.raises(InvalidInput, match=f"not a valid {datatype} element"):
            v2_json.decode_tensor("x", datatype, [1], [value], None)
    assert v2_json.decode_tensor("x", "FP64", [2], [1e39, -5], None) == [1e39, -5]
    for huge in (10**4000 // 7, {"k": "v" * 100_000}):
        with pytest.raises(InvalidInput, match="not a valid BYTES element") as caught:
            v2_json.decode_tensor("x", "BYTES", [1], [huge], None)
        assert len(caught.value.message) < 200  # the element is echoed bounded


def test_v2_fp32_overflow_over_http_is_a_400(served: TestClient) -> None:
    tensor = '{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e39]}'
    response = post(served, "/v2/models/clf/infer", '{"inputs": [' + tensor + "]}")
    assert_kserve_400(response, "not a valid FP32 element")


def test_decode_json_keeps_valid_json_exact() -> None:
    body = b'{"a": [1, -2.5, 1e308, 99999999999999999999, "x\\n", true, null]}'
    assert json_body.decode_json(body) == {
        "a": [1, -2.5, 1e308, 99999999999999999999, "x\n", True, None]
    }
    with pytest.raises(JSONBodyError, match="Expecting value: line 1 column 1"):
        json_body.decode_json(b"nope")


# ---------------------------------------------------------------- off the event loop


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_served_app(make_fake_registry()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


class DecodeSpy:
    """Wraps decode_json wherever a protocol module looks it up; records the thread of each
    call and, in a worker thread, waits until the event loop has run other coroutines."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[int] = []
        self.loop_ran_meanwhile: list[bool] = []
        self.ticks = 0
        real = json_body.decode_json

        def spy(body: bytes | str) -> Any:
            self.threads.append(threading.get_ident())
            if threading.get_ident() != self.loop_thread:
                start = self.ticks
                self.loop_ran_meanwhile.append(self._wait(lambda: self.ticks >= start + 3))
            return real(body)

        for module in (json_body, kserve_v1, kserve_v2):
            monkeypatch.setattr(module, "decode_json", spy)
        self.loop_thread = threading.get_ident()

    @staticmethod
    def _wait(condition: Callable[[], bool]) -> bool:
        event = threading.Event()
        for _ in range(500):  # gives up after 5 s: the loop is stuck (the decode is on it)
            if condition():
                return True
            event.wait(0.01)
        return False

    async def tick(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.001)


LARGE_TEXT = "x" * (LARGE_BODY_BYTES + 1)
LARGE_BODIES = [
    ("/v1/models/clf:predict", {"instances": [LARGE_TEXT]}),
    ("/v2/models/clf/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES",
                                          "data": [LARGE_TEXT]}]}),
    ("/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user",
                                                            "content": LARGE_TEXT}]}),
    ("/v1/embeddings", {"model": "embed", "input": [7] * (LARGE_BODY_BYTES // 2)}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body"), LARGE_BODIES, ids=lambda v: str(v)[:24])
async def test_large_bodies_decode_in_a_thread_while_the_loop_runs(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any]
) -> None:
    spy = DecodeSpy(monkeypatch)
    ticker = asyncio.create_task(spy.tick())
    try:
        response = await http.post(path, json=body)
    finally:
        ticker.cancel()
    assert response.status_code != 500, response.text
    assert len(spy.threads) == 1 and spy.threads[0] != spy.loop_thread
    assert spy.loop_ran_meanwhile == [True]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/clf:predict", {"instances": ["small"]}),
        (
            "/v2/models/clf/infer",
            {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["small"]}]},
        ),
        ("/v1/embeddings", {"model": "embed", "input": "small"}),
    ],  # fmt: skip
    ids=lambda v: str(v)[:24],
)
async def test_small_bodies_decode_inline(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any]
) -> None:
    spy = DecodeSpy(monkeypatch)
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    assert spy.threads == [spy.loop_thread]


def test_openai_routes_keep_their_documented_request_bodies() -> None:
    app = make_openai_app(make_fake_registry())
    paths = app.openapi()["paths"]
    for path, model in [
        ("/chat/completions", "ChatCompletionRequest"),
        ("/completions", "CompletionRequest"),
        ("/embeddings", "EmbeddingRequest"),
    ]:
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
    posts = [r for r in app.routes if getattr(r, "methods", None) == {"POST"}]
    assert posts and all(isinstance(r, JSONBodyRoute) for r in posts)


# ---------------------------------------------------------------- logs


def test_ignored_field_names_are_logged_bounded_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fields = {f"f{i:03d}": 1 for i in range(100)}
    fields["evil\nINFO fake line"] = 1
    fields["\x1b[31mred"] = 1
    fields["a" * 10_000] = 1
    body = CompletionRequest(prompt="Hi", **fields)
    with caplog.at_level(logging.WARNING, logger="hf_runtime.openai"):
        log_ignored_fields(body, "completions")
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message
    assert "ignoring 103 unsupported request field(s)" in message
    assert "'evil\\nINFO fake line'" in message and "'\\x1b[31mred'" in message
    assert "... 87 more" in message
    assert "a" * 64 in message and "a" * 65 not in message and len(message) < 2_000
