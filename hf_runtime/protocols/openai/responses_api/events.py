"""The Responses API's output items and stream events.

A stream sends OpenAI's events, each with its `sequence_number`: per output item
output_item.added, (content_part.added, reasoning_text.delta..., reasoning_text.done,
content_part.done | content_part.added, output_text.delta..., output_text.done,
content_part.done | function_call_arguments.delta..., .done), output_item.done; `EventWriter`
turns the chat's deltas into them and appends each finished item to the response's output.
"""

from __future__ import annotations

import uuid
from typing import Any

from hf_runtime.errors import ErrorKind, HFRuntimeError
from hf_runtime.protocols.errors import openai_body
from hf_runtime.protocols.openai.sse import dumps


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def message_item(text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": item_id("msg"),
        "status": status,
        "role": "assistant",
        "content": [part] if status == "completed" else [],
    }


def reasoning_item(text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "reasoning_text", "text": text}
    return {
        "type": "reasoning",
        "id": item_id("rs"),
        "summary": [],
        "content": [part] if status == "completed" else [],
        "encrypted_content": None,
        "status": status,
    }


def function_item(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id("fc"),
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"],
        "status": status,
    }


class EventWriter:
    """Numbered events, and the open output item (a message or a function call); finished
    items go to `output` (the response's)."""

    def __init__(self, output: list[dict[str, Any]]) -> None:
        self.output = output
        self.sequence = 0
        self.item: dict[str, Any] | None = None
        self.slot: int | None = None  # the open function call's tool-call index
        self.text = ""

    def send(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {dumps(payload)}\n\n"

    def fields(self, fields: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if fields.get("reasoning"):
            if self.item is None or self.item["type"] != "reasoning":
                out += self.close()
                out += self._open(reasoning_item("", "in_progress"))
                part = {"type": "reasoning_text", "text": ""}
                out.append(self.send("response.content_part.added", **self._at(), part=part))
            self.text += fields["reasoning"]
            out.append(
                self.send("response.reasoning_text.delta", **self._at(), delta=fields["reasoning"])
            )
        if fields.get("content"):
            if self.item is None or self.item["type"] != "message":
                out += self.close()
                out += self._open(message_item("", "in_progress"))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(self.send("response.content_part.added", **self._at(), part=part))
            self.text += fields["content"]
            out.append(
                self.send(
                    "response.output_text.delta", **self._at(), delta=fields["content"],
                    logprobs=[],
                )
            )  # fmt: skip
        for part in fields.get("tool_calls") or []:
            function = part.get("function", {})
            if part.get("id") is not None or self.slot != part["index"]:
                out += self.close()
                call = {"id": part.get("id"), "function": {"name": function.get("name"),
                                                           "arguments": ""}}  # fmt: skip
                out += self._open(function_item(call, "in_progress"))
                self.slot = part["index"]
            if function.get("arguments") and self.item is not None:
                self.item["arguments"] += function["arguments"]
                out.append(
                    self.send(
                        "response.function_call_arguments.delta",
                        item_id=self.item["id"],
                        output_index=len(self.output),
                        delta=function["arguments"],
                    )
                )
        return out

    def _at(self) -> dict[str, Any]:
        assert self.item is not None
        return {"item_id": self.item["id"], "output_index": len(self.output),
                "content_index": 0}  # fmt: skip

    def _open(self, item: dict[str, Any]) -> list[str]:
        self.item = item
        return [self.send("response.output_item.added", output_index=len(self.output),
                          item=item)]  # fmt: skip

    def close(self) -> list[str]:
        item, self.item, self.slot = self.item, None, None
        if item is None:
            return []
        out = []
        index = len(self.output)
        if item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": self.text}
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self.send("response.reasoning_text.done", **at, text=self.text))
            out.append(self.send("response.content_part.done", **at, part=part))
            item = {**item, "status": "completed", "content": [part]}
            self.text = ""
        elif item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self.send("response.output_text.done", **at, text=self.text, logprobs=[]))
            out.append(self.send("response.content_part.done", **at, part=part))
            item = {**item, "status": "completed", "content": [part]}
            self.text = ""
        else:
            out.append(
                self.send(
                    "response.function_call_arguments.done", item_id=item["id"],
                    output_index=index, name=item["name"], arguments=item["arguments"],
                )
            )  # fmt: skip
            item = {**item, "status": "completed"}
        self.output.append(item)
        out.append(self.send("response.output_item.done", output_index=index, item=item))
        return out

    def error(self, exc: Exception) -> str:
        if isinstance(exc, HFRuntimeError):
            error = openai_body(exc.kind, exc.message, exc.param)["error"]
        else:
            error = openai_body(ErrorKind.INTERNAL, f"Internal server error: {type(exc).__name__}")[
                "error"
            ]
        return self.send("error", code=str(error["code"]), message=error["message"],
                         param=error["param"])  # fmt: skip
