"""Stored responses (`store: true`, OpenAI's default): what `previous_response_id` continues and
`GET` / `DELETE /responses/{id}` read. In memory, per process, bounded three ways: at most
MAX_STORED_RESPONSES entries, MAX_STORED_BYTES of them (their JSON size), each kept at most
MAX_STORED_AGE_S; the oldest go first. A response larger than the byte bound alone is not kept.
Used from the event loop only (no awaits inside: no lock needed).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_STORED_RESPONSES = 1024
MAX_STORED_BYTES = 64 * 1024 * 1024
MAX_STORED_AGE_S = 3600.0


@dataclass(frozen=True)
class StoredResponse:
    body: dict[str, Any]  # the Response object as answered
    messages: list[dict[str, Any]]  # the conversation (chat messages, output included)
    size: int
    stored_at: float


class ResponseStore:
    def __init__(
        self,
        max_entries: int = MAX_STORED_RESPONSES,
        max_bytes: int = MAX_STORED_BYTES,
        max_age_s: float = MAX_STORED_AGE_S,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._bytes = 0

    def put(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        size = len(json.dumps([body, messages], ensure_ascii=False).encode())
        if size > self.max_bytes:
            return
        self.delete(body["id"])
        self._entries[body["id"]] = StoredResponse(body, messages, size, time.monotonic())
        self._bytes += size
        self._evict()

    def get(self, response_id: str) -> StoredResponse | None:
        self._evict()
        return self._entries.get(response_id)

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        return True

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _evict(self) -> None:
        oldest = time.monotonic() - self.max_age_s
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            full = len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            if not full and entry.stored_at >= oldest:
                return
            self.delete(key)
