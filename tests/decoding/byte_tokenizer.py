"""A byte-level fake tokenizer whose tokens can split UTF-8 characters, so detokenization
edge cases are deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ByteTokenizer:
    """Token id i < 256 is the byte i; ids from 256 are multi-byte pieces or specials."""

    def __init__(self, pieces: dict[int, bytes], specials: dict[int, str]) -> None:
        self.pieces = {i: bytes([i]) for i in range(256)} | pieces
        self.specials = specials

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str:
        skip = kwargs.get("skip_special_tokens", False)
        out = b""
        for token_id in token_ids:
            if token_id in self.specials:
                if not skip:
                    out += self.specials[token_id].encode()
            else:
                out += self.pieces[token_id]
        return out.decode("utf-8", errors="replace")


EOS = 300
STOP_TOKEN = 301


def make_byte_tokenizer() -> ByteTokenizer:
    return ByteTokenizer({256: b"Hello", 257: b" world"}, {EOS: "</s>", STOP_TOKEN: "<stop>"})
