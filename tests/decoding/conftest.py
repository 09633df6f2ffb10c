"""Fixtures for the per-sequence decoding pieces (hf_runtime.decoding)."""

from __future__ import annotations

import pytest

from tests.decoding.byte_tokenizer import ByteTokenizer, make_byte_tokenizer


@pytest.fixture
def byte_tokenizer() -> ByteTokenizer:
    return make_byte_tokenizer()
