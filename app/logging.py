"""Structured logs: one JSON object per line, each with the request id it belongs to."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonEncoder

# What every LogRecord has; anything else on a record came as ``extra=`` and is logged too.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "correlation_id",
    "taskName",
}


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "name", "message", "request_id", ...extra fields}`` on one line,
    plus ``exc_info`` / ``stack_info`` when present: the object python-json-logger's
    JsonFormatter wrote, built directly. That one inspected every record against its format
    string and cost about as much as the rest of the access log middleware together; the
    JSON encoder (for dates, exceptions and other odd values) is still its own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "correlation_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, cls=JsonEncoder)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(CorrelationIdFilter(uuid_length=32, default_value="-"))
    if as_json:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log (app.middleware) replaces uvicorn's, with the request id in it.
    logging.getLogger("uvicorn.access").disabled = True
