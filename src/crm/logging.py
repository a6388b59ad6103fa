"""Structured logging: JSON lines when not on a terminal, one access line per request.

Nothing here logs request bodies, headers or query strings, which is how keys, tokens,
passwords and codes stay out of the logs.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes of every LogRecord; anything else passed in `extra=` is a structured field.
# uvicorn adds `color_message`, an ANSI-coloured copy of msg that means nothing in a log file.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


# Loggers that write statement parameters or rows at DEBUG or INFO. hpack logs HTTP/2 headers.
_PARAMETER_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "hpack")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        )
        base = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base}  {extras}" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours and print query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic's per-migration chatter is noise at every start-up check.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # At DEBUG the database libraries log statement parameters and result rows (one-time codes,
    # message bodies, token hashes): they stay at WARNING or above whatever the level.
    quiet = max(logging.WARNING, root.level)
    for name in _PARAMETER_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
