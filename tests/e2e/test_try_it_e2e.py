"""A newcomer's first chat: the README's own "Try it" request, exactly as printed (no sampling
fields), against SmolLM2 with the generation section configs/default.yaml ships (its
sampling_defaults and default_max_tokens: tests/e2e/conftest.py takes them from that file),
on both backends. Each try must be a short, sensible answer: bounded by the configured
default length, and naming Paris."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from hf_runtime.config import REPO_ROOT
from tests.e2e.conftest import smollm2_generation

pytestmark = pytest.mark.e2e

TRIES = 5


def readme_chat_body() -> dict[str, Any]:
    """The JSON body of the README's "Try it" chat curl, read from the README itself."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"/v1/chat/completions[^\n]*\\\n\s*-d '(\{[^']*\})'", section)
    assert found, "the README's Try it section has no chat/completions curl"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def url(smollm2_url: str) -> str:
    """SmolLM2 on one backend (tests/e2e/conftest.py: smollm2_url)."""
    return smollm2_url


def test_the_readmes_first_chat_is_short_and_sensible(url: str) -> None:
    body = readme_chat_body()
    assert body == {"model": "smollm2", "messages": [
        {"role": "user", "content": "What is the capital of France?"}]}  # fmt: skip
    cap = smollm2_generation()["default_max_tokens"]
    card = httpx.get(f"{url}/v1/models/smollm2", timeout=30).json()
    assert card["sampling_defaults"]["max_tokens"] == cap
    for _ in range(TRIES):
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        reply = response.json()
        answer = reply["choices"][0]["message"]["content"]
        assert reply["usage"]["completion_tokens"] <= cap, answer
        assert "Paris" in answer, answer
