"""Structured logs: one JSON object per line, each with the request id it belongs to."""

from __future__ import annotations

import logging
import sys
import time
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


# One encoder for every line: json.dumps(cls=...) builds a new one each call.
_ENCODER = JsonEncoder()


class JsonLineFormatter(logging.Formatter):
    """``{"time", "level", "name", "message", "request_id", ...extra fields}`` on one line,
    plus ``exc_info`` / ``stack_info`` when present: the object python-json-logger's
    JsonFormatter wrote, built directly. That one inspected every record against its format
    string and cost about as much as the rest of the access log middleware together; the
    JSON encoder (for dates, exceptions and other odd values) is still its own."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        # The date and time to the second change once a second, not once a line: formatting
        # them (localtime, strftime) was a fifth of the access log line.
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"

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
        return _ENCODER.encode(line)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    # No record says which file, line, thread or process logged it (no format shows them):
    # finding the caller's frame and the thread and process names was a third of the cost of
    # an access log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(CorrelationIdFilter(uuid_length=None, default_value="-"))
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
