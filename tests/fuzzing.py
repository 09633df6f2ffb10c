"""Schemathesis fuzzing of a running server through the OpenAPI documents it publishes.

Shared by the in-process fuzz test (tests/protocols/test_fuzz.py) and the one against a real
`bentoml serve` (tests/e2e/test_fuzz_e2e.py). Every response must:
  - not be a 5xx, except 501 where the document lists it (`no_server_error`);
  - have a status, content type and body its document lists (`status_code_conformance`,
    `content_type_conformance`, `response_schema_conformance`).

Not checked:
  - `not_a_server_error`: it fails on 501, the deliberate, documented answer of V1 `:explain`
    and the V2 version routes (`no_server_error` applies the same rule otherwise);
  - `negative_data_rejection`: bodies allow extra keys and V1 takes "inputs" for "instances",
    so some schema-breaking requests are rightly served;
  - `positive_data_acceptance`: schema-valid requests may name unknown models or values out of
    the ranges the handlers check, rightly refused with 400/404.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction

from tests.fuzz_valid import Served, valid_requests

CHECKS: list[CheckFunction] = [
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def examples(default: int) -> int:
    """Examples per operation, mode and prefix; FUZZ_EXAMPLES=200 fuzzes deeper locally."""
    return int(os.environ.get("FUZZ_EXAMPLES", default))


def no_server_error(status: int, allowed: frozenset[int] = frozenset({501})) -> bool:
    """No 5xx but `allowed` ones: 501 Not Implemented by default, which
    status_code_conformance confines to the operations whose documents list it."""
    return status < 500 or status in allowed


@dataclass
class FuzzRun:
    """Sends schemathesis cases to one server and tallies the statuses that came back."""

    base_url: str
    headers: dict[str, str]
    model_names: list[str]
    schema_headers: dict[str, str] | None = None  # to fetch documents; default `headers`
    allowed_5xx: frozenset[int] = frozenset({501})
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def summary(self, label: str) -> str:
        statuses = dict(sorted(self.statuses.items()))
        return f"[fuzz {label}] {self.sent} requests in {self.seconds:.1f}s; {statuses}"

    def fuzz(
        self,
        document: str,
        max_examples: int,
        *,
        include: Callable[[str], bool] = lambda path: True,
        expect: Callable[[int], bool] | None = None,
        valid_for: Served | None = None,
    ) -> None:
        """Every operation of `document` whose path `include` accepts, at every server (mount
        prefix) the document names: schema-valid requests, and schema-breaking bodies.

        With `valid_for`, only requests the handlers accept, for the models it names (see
        tests/fuzz_valid.py), so that they reach the models.
        """
        started = time.monotonic()
        schema = self._load(document, valid_for)
        prefixes = [server["url"] for server in schema.raw_schema.get("servers", [])] or [""]
        modes = [GenerationMode.POSITIVE]
        if valid_for is None:
            modes.append(GenerationMode.NEGATIVE)
        for result in schema.get_all_operations():
            operation = result.ok()
            if not include(operation.path):
                continue
            for prefix in prefixes:
                for mode in modes:
                    if mode is GenerationMode.NEGATIVE and not operation.body:
                        continue  # path parameters are any string: nothing to break
                    self._fuzz_operation(
                        operation, mode, prefix, max_examples, expect, aim=valid_for is None
                    )
        self.seconds += time.monotonic() - started

    def _load(self, document: str, valid_for: Served | None) -> Any:
        headers = self.headers if self.schema_headers is None else self.schema_headers
        url = self.base_url + document
        if valid_for is None:
            return schemathesis.openapi.from_url(url, headers=headers, timeout=10)
        published = self.session.get(url, headers=headers, timeout=10)
        published.raise_for_status()
        return schemathesis.openapi.from_dict(valid_requests(published.json(), valid_for))

    def _fuzz_operation(
        self,
        operation: Any,
        mode: GenerationMode,
        prefix: str,
        max_examples: int,
        expect: Callable[[int], bool] | None,
        *,
        aim: bool,
    ) -> None:
        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,  # nothing written into the repository
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def send(case: Any, data: st.DataObject) -> None:
            if aim:
                self._aim_at_real_models(case, data)
            else:
                whole_token_ids(case)
            response = case.call(
                base_url=self.base_url + prefix,
                session=self.session,
                headers=self.headers,
                timeout=30,
            )
            status = response.status_code
            self.statuses[status] += 1
            ok = no_server_error(status, self.allowed_5xx) and (expect is None or expect(status))
            # The body may be binary (V2's extension): shown lossily, only on failure.
            shown = response.content[:500].decode("utf-8", errors="replace") if not ok else ""
            assert ok, f"{case.as_curl_command()}\n-> {status} {shown}"
            case.validate_response(response, checks=CHECKS, headers=self.headers)

        send()

    def _aim_at_real_models(self, case: Any, data: st.DataObject) -> None:
        """Half the time, name a model that exists: random names only ever reach a 404."""
        if not self.model_names or not data.draw(st.booleans(), label="real model"):
            return
        name = data.draw(st.sampled_from(self.model_names), label="model")
        if case.path_parameters and "name" in case.path_parameters:
            case.path_parameters["name"] = name
            if "model_version" in case.path_parameters:
                version = data.draw(st.sampled_from(["1", "2", "3"]), label="version")
                case.path_parameters["model_version"] = version
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = name


def whole_token_ids(case: Any) -> None:
    """Token ids as JSON integers. JSON Schema's "integer" includes 7.0, which hypothesis
    generates, but `prompt` and `input` are StrictInt lists (so that a list of digit strings
    stays text) and refuse it with 400: schema-valid, yet not what the handlers accept; so are
    /detokenize's `tokens`."""
    if not isinstance(case.body, dict):
        return
    for key in ("prompt", "input", "tokens"):
        value = case.body.get(key)
        if isinstance(value, list):
            case.body[key] = [
                int(v) if isinstance(v, float) and v.is_integer() else v for v in value
            ]
