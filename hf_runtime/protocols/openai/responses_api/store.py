"""Stored responses (`store: true`, OpenAI's default): what `previous_response_id` continues and
`GET` / `DELETE /responses/{id}` and `GET /responses/{id}/input_items` read. In memory, per
process, bounded three ways (the server's `response_store_*` settings, defaults below): at most
`max_entries` entries, `max_bytes` of them (their JSON size), each kept at most `max_age_s`;
the oldest go first. A response larger than the byte bound alone is not kept. `max_entries` 0
turns the store off: nothing is kept. Used from the event loop only (no awaits inside: no lock
needed).
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
    # The conversation as Responses items (with ids), input only: GET .../input_items.
    input_items: tuple[dict[str, Any], ...] = ()


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

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0

    def put(
        self,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        input_items: list[dict[str, Any]] | None = None,
    ) -> None:
        items = tuple(input_items or ())
        size = len(json.dumps([body, messages, items], ensure_ascii=False).encode())
        if not self.enabled or size > self.max_bytes:
            return
        self.delete(body["id"])
        entry = StoredResponse(body, messages, size, time.monotonic(), items)
        self._entries[body["id"]] = entry
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
