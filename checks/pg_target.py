"""The target PostgreSQL database: checking its URL, building connection strings, naming it.

Both the connectivity and the performance check connect to the migration target given as a
URL. This module turns that URL into a libpq conninfo with the TLS settings asked for, and into
the redacted form that reports show. The URL's password never leaves this module except inside
the conninfo handed to psycopg.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import make_conninfo

from .redact import redact_url, scrub, url_password
from .report import CheckInputError

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
APPLICATION_NAME = "mingus-deploy-check"


@dataclass(frozen=True)
class Target:
    """A checked PostgreSQL URL with the connection settings a check will use."""

    url: str
    conninfo: str
    redacted: str
    password: str
    sslmode: str
    host: str
    port: int
    dbname: str
    user: str

    def scrub(self, text) -> str:
        """`text` (say, a driver's error message) with this target's password removed."""
        return scrub(str(text), self.password)


def target(url: str, sslmode: str | None = None, ca_file: str | None = None,
           connect_timeout: int = 10) -> Target:
    """Check `url` and build its Target. Raises CheckInputError naming the redacted URL.

    With `ca_file` the server's certificate is verified against it (sslmode verify-full unless
    the caller asked for verify-ca). Without an explicit `sslmode`, the URL's own is used, or
    libpq's default (prefer).
    """
    shown = redact_url(url or "")
    try:
        parts = urlsplit(url or "")
        port = parts.port or 5432
    except ValueError as exc:
        raise CheckInputError(f"not a valid URL: {shown}") from exc
    if parts.scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise CheckInputError(f"not a PostgreSQL URL (postgres://...): {shown}")
    if not parts.hostname:
        raise CheckInputError(f"PostgreSQL URL names no host: {shown}")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise CheckInputError(f"unknown sslmode {sslmode!r}: use one of {', '.join(SSL_MODES)}")
    extra = {"connect_timeout": int(connect_timeout), "application_name": APPLICATION_NAME}
    if ca_file:
        if not Path(ca_file).is_file():
            raise CheckInputError(f"CA file not found: {ca_file}")
        extra["sslrootcert"] = str(ca_file)
        sslmode = sslmode if sslmode in ("verify-ca", "verify-full") else "verify-full"
    if sslmode:
        extra["sslmode"] = sslmode
    # A SQLAlchemy-style scheme (postgresql+psycopg2) is the same URL to libpq.
    plain_url = url.replace(parts.scheme + "://", "postgresql://", 1)
    try:
        conninfo = make_conninfo(plain_url, **extra)
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        raise CheckInputError(f"PostgreSQL URL does not parse: {shown} "
                              f"({scrub(exc, url_password(url))})") from exc
    query_mode = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("sslmode")
    return Target(
        url=url,
        conninfo=conninfo,
        redacted=shown,
        password=url_password(url),
        sslmode=sslmode or query_mode or "prefer",
        host=parts.hostname,
        port=port,
        dbname=parts.path.lstrip("/") or (parts.username or ""),
        user=parts.username or "",
    )


def explain_connect_error(exc, tgt: Target) -> str:
    """A one-line reason an operator can act on, from a psycopg connection error."""
    text = tgt.scrub(str(exc)).strip()
    lowered = text.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        hint = "authentication failed: check the user and password"
    elif "does not support ssl" in lowered:
        hint = f"the server does not offer TLS, but sslmode={tgt.sslmode} requires it"
    elif "certificate verify failed" in lowered or "certificate" in lowered:
        hint = "the server's TLS certificate did not verify against the CA file"
    elif "connection refused" in lowered:
        hint = "nothing is listening at that host and port"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        hint = "the host name does not resolve"
    elif "timeout" in lowered:
        hint = "the connection timed out"
    elif "does not exist" in lowered:
        hint = "the database or role does not exist"
    else:
        hint = "connection failed"
    # libpq messages run over several lines; one line keeps logs and summaries readable.
    return f"{hint} ({' '.join(line.strip() for line in text.splitlines() if line.strip())})"
