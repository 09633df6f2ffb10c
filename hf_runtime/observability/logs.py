"""Log lines that no request can forge, with the request id in every line.

- Text format: control characters (newlines included) in the message are escaped, so an input
  or a field name can never start a new, fake log line.
- JSON format (`log_format: json`): one object per line; json.dumps escapes everything.
- Every record carries `request_id` (from the gateway's request context, "-" outside one).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, Literal

from hf_runtime.observability.context import current_request_id

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s] [req %(request_id)s] %(message)s"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def escape_control(text: str) -> str:
    """`\\n` -> `\\\\n` etc.: printable, one line, still readable."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def shorten(text: str, limit: int | None) -> str:
    """At most `limit` characters of `text`, saying how much was cut (None: no limit)."""
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id`; attach it to handlers so every line can show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class SafeTextFormatter(logging.Formatter):
    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        # Tracebacks are ours, not the client's: keep their lines, but indent them so no
        # line of a traceback can look like the start of a record.
        return "\n".join("    " + line for line in super().formatException(ei).splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", current_request_id()),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else SafeTextFormatter()


def configure_logging(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """hf_runtime's loggers: one handler writing to where BentoML's logger writes.

    Idempotent; reconfigures the format when called again with another one.
    """
    ours = logging.getLogger("hf_runtime")
    ours.setLevel(level)
    ours.propagate = False
    bentoml_handlers = logging.getLogger("bentoml").handlers
    theirs = [h for h in bentoml_handlers if isinstance(h, logging.StreamHandler)]
    stream = theirs[0].stream if theirs else None
    for handler in list(ours.handlers):
        if getattr(handler, "_hf_runtime", False):
            ours.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler._hf_runtime = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(make_formatter(log_format))
    ours.addHandler(handler)
