"""Structured logging: one line per event, as key=value pairs or JSON.

Every line carries the node id and, inside an RPC or HTTP handler, the request id; both
come from context variables so that code deep in a call chain need not pass them along.
Call sites use `log_event(logger, "event.name", key=value, ...)` so that events are
greppable by name and fields are machine-readable.
"""

import contextvars
import json
import logging
import sys
import time
from typing import Any, Literal

_node_id: contextvars.ContextVar[str] = contextvars.ContextVar("cairn_node_id", default="-")
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("cairn_request_id", default="-")

_FIELDS_ATTR = "cairn_fields"


def bind_node(node_id: str) -> None:
    """Set the node id shown on every log line of this process (or task tree)."""
    _node_id.set(node_id)


def bind_request(request_id: str) -> contextvars.Token[str]:
    """Set the request id for log lines of the current task; reset with the token."""
    return _request_id.set(request_id)


def log_event(
    logger: logging.Logger, event: str, level: int = logging.INFO, /, **fields: Any
) -> None:
    """Log one structured event."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS_ATTR: fields}, stacklevel=2)


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


class _Formatter(logging.Formatter):
    def __init__(self, style: Literal["kv", "json"]) -> None:
        super().__init__()
        self._output = style

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": _node_id.get(),
            "req": _request_id.get(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update(getattr(record, _FIELDS_ATTR, {}))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self._output == "json":
            return json.dumps(fields, default=str)
        return " ".join(f"{key}={_quote(value)}" for key, value in fields.items())


def configure_logging(style: Literal["kv", "json"] = "kv", level: str = "info") -> None:
    """Send structured lines to stderr. Idempotent: replaces Cairn's handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "cairn", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(style))
    handler.cairn = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
