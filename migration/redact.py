"""Keeping database passwords out of messages, reports and logs.

`redact_url` is the one function every caller uses before a target URL is shown anywhere;
`scrub` cleans text that came from elsewhere (a driver's error message) of any password it
may carry.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

MASK = "***"

_SECRET_KEYS = {"password", "pass", "pwd", "passwd", "sslpassword", "secret", "token"}
# scheme://user:password@host -- the password runs to the last '@' followed by a host, because
# passwords may themselves contain '@', '/', '?' or '#' (libpq takes them; urlsplit does not).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>\S*)@(?=[A-Za-z0-9\[/:?]|$)")
# libpq keyword/value strings: password=secret or password='se cret'
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:%s)\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]+)" % "|".join(sorted(_SECRET_KEYS)),
    re.IGNORECASE,
)


# user:password@host anywhere, with or without a (well-formed) scheme: `postgresql//u:pw@h`,
# `u:pw@h`. The password runs to the last '@' before whitespace, as in a URL.
_USERINFO_PASSWORD = re.compile(
    r"(?P<head>(?<![A-Za-z0-9._%+-])(?!mailto:)[A-Za-z0-9._%+-]+:)(?P<pw>(?!//)\S*[^\s@:])@"
    r"(?=[A-Za-z0-9\[])", re.IGNORECASE)


def _userinfo(text: str):
    """(scheme://, user, password, rest) of a URL whose userinfo holds a password, else None.

    Not urlsplit: a password holding '/', '?' or '#' ends its netloc early, and the password
    would pass as the path. The userinfo is everything between '://' and the last '@' (a URL
    may name no host: `postgres://u:pw@/db`); the user is what comes before its first ':'. When the query itself holds an
    '@' this masks more than the password, never less.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        return None
    at = rest.rfind("@")
    if at < 0:
        return None
    userinfo = rest[:at]
    user, colon, password = userinfo.partition(":")
    if not colon or any(c in user for c in "/?#"):
        return None
    return scheme + sep, user, password, rest[at + 1:]


def redact_url(url: str) -> str:
    """Return `url` with its password (and password-like query parameters) replaced by ***.

    Works on URLs (``postgres://user:pw@host/db?password=...``) and on libpq keyword strings
    (``host=... password=...``); anything it cannot parse is scrubbed as plain text.
    """
    if not url:
        return url
    text = str(url)
    if "://" not in text:
        return scrub(text)
    found = _userinfo(text)
    if found:
        head, user, _, rest = found
        text = f"{head}{user}:{MASK}@{rest}"
    try:
        parts = urlsplit(text)
        netloc = parts.netloc
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = "&".join(
                f"{quote(k, safe='')}={MASK if k.lower() in _SECRET_KEYS else quote(v, safe='')}"
                for k, v in pairs
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return scrub(text)


def url_password(url: str) -> str:
    """The password a URL or libpq string carries, or '' (so foreign messages can be scrubbed)."""
    if not url:
        return ""
    text = str(url)
    if "://" in text:
        found = _userinfo(text)
        if found and found[2]:
            return unquote(found[2])
        try:
            parts = urlsplit(text)
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key.lower() in _SECRET_KEYS and value:
                    return value
        except ValueError:
            pass
        match = _URL_PASSWORD.search(text)
        return match.group("pw") if match else ""
    match = _KV_PASSWORD.search(text)
    return match.group("pw").strip("'") if match else ""


def scrub(text: object, *secrets: str) -> str:
    """`text` with URL passwords, ``password=...`` pairs and each given secret replaced by ***."""
    out = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", str(text))
    out = _KV_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", out)
    out = _USERINFO_PASSWORD.sub(
        lambda m: m.group(0) if m.group("pw") == MASK else f"{m.group('head')}{MASK}@", out)
    for secret in secrets:
        if secret and len(secret) >= 3:  # shorter "secrets" would shred ordinary words
            out = out.replace(secret, MASK)
            encoded = quote(secret, safe="")
            if encoded != secret:
                out = out.replace(encoded, MASK)
    return out
