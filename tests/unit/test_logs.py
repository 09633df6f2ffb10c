"""Log lines no client can forge, with the request id in every line."""

from __future__ import annotations

import io
import json
import logging

from hf_runtime.observability.context import RequestContext, new_request_id, request_scope
from hf_runtime.observability.logs import (
    JsonFormatter,
    RequestIdFilter,
    SafeTextFormatter,
    escape_control,
    shorten,
)


def _logged(formatter: logging.Formatter, message: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("hf_runtime.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with request_scope(RequestContext("req-42")):
            logger.warning(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_text_lines_escape_control_characters_and_carry_the_request_id() -> None:
    out = _logged(SafeTextFormatter(), "field %s", "evil\nINFO fake line\r\x1b[31m")
    assert out.count("\n") == 1  # one record, one line
    assert "evil\\nINFO fake line\\r\\x1b[31m" in out
    assert "[req req-42]" in out


def test_json_lines_are_one_object_each() -> None:
    out = _logged(JsonFormatter(), "text %r", "a\nb")
    assert out.count("\n") == 1
    entry = json.loads(out)
    assert entry["request_id"] == "req-42" and entry["level"] == "WARNING"
    assert entry["message"] == "text 'a\\nb'"


def test_helpers() -> None:
    assert escape_control("a\u2028b\x00") == "a\\u2028b\\x00"
    assert shorten("abcdef", 3) == "abc...[3 more chars]" and shorten("abc", 3) == "abc"
    assert shorten("abc", None) == "abc"
    assert new_request_id("ok-id_1") == "ok-id_1"
    assert new_request_id("bad id") != "bad id" and len(new_request_id(None)) == 32
    assert new_request_id("x" * 129) != "x" * 129


def test_fresh_request_ids_are_distinct_version_4_uuids() -> None:
    import uuid

    ids = [new_request_id(None) for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122
