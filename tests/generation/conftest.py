"""Fixtures for the engine-independent generation pieces."""

from __future__ import annotations

import pytest

from tests.generation.byte_tokenizer import ByteTokenizer, make_byte_tokenizer


@pytest.fixture
def byte_tokenizer() -> ByteTokenizer:
    return make_byte_tokenizer()
