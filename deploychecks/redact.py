"""Keeping passwords out of reports, logs and error messages.

Every URL a check shows goes through `redact_url`; every message that came from somewhere else
(a driver's exception, a server's reply) goes through `scrub` with the secrets the check knows.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@host: the password is everything between the first ':' after the
# user name and the last '@' before the host, because passwords may themselves hold '@'.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^\s/?#]*)@")
_SECRET_QUERY_KEYS = {"password", "pass", "pwd", "secret", "token", "sslpassword", "api_key"}


def redact_url(url: str) -> str:
    """The URL with its password (and password-like query parameters) replaced by ***."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            pairs = [(k, MASK if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs]
            query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_password(url: str) -> str:
    """The password held in a URL, or '' (so a check can scrub it from foreign messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    password = parts.password or ""
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "password":
            password = password or value
    return password


def scrub(text: str, *secrets: str) -> str:
    """`text` with every URL password and each given secret value replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", str(text))
    for secret in secrets:
        # One- and two-character "secrets" would shred ordinary words; they are too short to
        # leak anything anyway and the env check reports them as too short.
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text
