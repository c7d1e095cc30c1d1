"""Structured logs: one JSON object per line, for App Platform's log forwarding.

Messages pass through the same scrubbing as reports, so a URL password that reaches a log line
(a driver's error, say) is masked there too.
"""
import json
import logging

from migration.redact import scrub

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record):
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        # Extra fields passed with logger.info(..., extra={...}) become keys of their own.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, (int, float, bool, type(None))) else scrub(str(value))
        if record.exc_info:
            data["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The readable format for a terminal, scrubbed the same way."""

    def format(self, record):
        return scrub(super().format(record))
