"""Keeping passwords out of reports, logs and error messages.

One implementation serves the whole app: the engine's (`migration.redact`, plain Python like the
checks), which also masks libpq `password=...` pairs. Every URL a check shows goes through
`redact_url`; every message that came from elsewhere goes through `scrub` with the secrets the
check knows.
"""
from urllib.parse import urlsplit

from migration.redact import MASK, redact_url, scrub, url_password  # noqa: F401

__all__ = ["MASK", "redact_url", "scrub", "url_password"]


def redact_webhook(url):
    """scheme://host/… : webhook tokens live in the path or the query, so neither is shown."""
    try:
        parts = urlsplit(url or "")
        port = f":{parts.port}" if parts.port else ""  # a bad port raises here
    except ValueError:  # e.g. https://h:abc/ or https://[::1/ : shown as nothing of it
        return "***"
    if not parts.scheme or not parts.hostname:
        return "***"
    hidden = "/***" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{hidden}"
