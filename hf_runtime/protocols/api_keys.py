"""API keys as every transport presents them: HTTP headers and gRPC metadata alike.

A key comes as `authorization: Bearer <key>` (what OpenAI SDKs send) or `x-api-key: <key>`;
header and metadata names are lowercase in both (HTTP's are case-insensitive, gRPC's are
lowercase on the wire). Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
INVALID_KEY = "invalid API key"


def key_matches(presented: str, keys: Sequence[str]) -> bool:
    """Constant time: digests of equal length are compared, against every configured key, so
    neither the key's content nor its length shows in the timing."""
    digest = hashlib.sha256(presented.encode()).digest()
    found = False
    for key in keys:
        found |= hmac.compare_digest(digest, hashlib.sha256(key.encode()).digest())
    return found


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in `headers` (lowercase names), or None when there is none."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key")


def key_error(headers: Mapping[str, str], keys: Sequence[str]) -> str | None:
    """Why a request with `headers` is refused, or None when `keys` accept it (or are none)."""
    if not keys:
        return None
    key = presented_key(headers)
    if key is None:
        return MISSING_KEY
    return None if key_matches(key, keys) else INVALID_KEY
