"""Keeping passwords out of reports, logs and error messages.

One implementation serves the whole app: the engine's (`migration.redact`, plain Python like the
checks), which also masks libpq `password=...` pairs. Every URL a check shows goes through
`redact_url`; every message that came from elsewhere goes through `scrub` with the secrets the
check knows.
"""
from migration.redact import MASK, redact_url, scrub, url_password

__all__ = ["MASK", "redact_url", "scrub", "url_password"]
