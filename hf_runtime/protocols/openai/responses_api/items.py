"""A response's input as OpenAI's items (GET /responses/{id}/input_items), and their paging.

The items are the whole conversation that produced the response, as OpenAI lists them: the
earlier stored turns' input and output items (through `previous_response_id`), then this
request's input. Each input item is kept as the client sent it (already checked by
`schemas.input_messages`), with an `id` and `status` when it had none, a string message content
as one `input_text` part (`output_text` for an assistant), and a missing `type` as "message".
"""

from __future__ import annotations

import uuid
from typing import Any

from hf_runtime.errors import InvalidInput, preview

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def request_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This request's `input` as items with ids."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    return [_with_id(dict(item)) for item in value]


def _with_id(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.setdefault("type", "message")
    if kind == "message" and isinstance(item.get("content"), str):
        part = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": part, "text": item["content"]}]
    if not item.get("id"):
        item["id"] = f"{_ID_PREFIX.get(kind, 'item')}_{uuid.uuid4().hex}"
    if kind in _ID_PREFIX:
        item.setdefault("status", "completed")
    return item


def page(
    items: tuple[dict[str, Any], ...], after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """One page of OpenAI's list shape: `limit` items in `order` (desc: newest first) after the
    item whose id is `after`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", param="limit")
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidInput(
                f"after: no item with id {preview(after)!r} in this response's input",
                param="after",
            )
        start = ids.index(after) + 1
    data = ordered[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(ordered),
    }
