"""One HTTP request, made the same way by every caller: the http check, the monitoring's health
sample (deploychecks/monitor.py) and the webhook notifications (deploychecks/delivery.py).

Built on httpx: a timeout on every phase, TLS verified against the system store or only the CA
file given, no redirects followed (a redirect is an answer to report, not to chase), no proxy
taken from the environment, and at most `max_body` bytes of a body read. A failure raises
`RequestFailed` whose text is plain words with no URL in it (a webhook's URL is a secret).
"""
from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass

import httpx

# httpx logs every request's full URL at INFO, and a webhook's URL is a secret: keep its loggers
# (and httpcore's, which logs at DEBUG) to warnings, whatever level the app logs at.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

USER_AGENT = "mingus-deploy/1"
MAX_BODY = 1024 * 1024  # read at most this much of a body: we time responses, not download


class RequestFailed(Exception):
    """No HTTP answer (refused, timed out, TLS failed); str() says why without the URL."""

    def __init__(self, reason, exc=None):
        super().__init__(reason)
        self.kind = type(exc).__name__ if exc is not None else "RequestFailed"


@dataclass
class Response:
    status: int
    headers: dict  # lower-case names
    elapsed_ms: float
    body: bytes = b""


def tls_context(ca_file=None, verify=True) -> ssl.SSLContext:
    """The TLS settings of a request: with a CA file only that CA is trusted (a check proves the
    chain the operator expects); `verify=False` for measuring a site whose certificate failed."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _reason(exc) -> str:
    seen = exc
    while seen is not None:  # httpx wraps the ssl error: say what the certificate check found
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    # httpx's messages carry no URL; the class names the failure (ConnectError, ReadError...).
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def request(url, method="GET", *, context=None, timeout=5.0, headers=None, content=None,
            max_body=MAX_BODY, user_agent=USER_AGENT) -> Response:
    """Send one request and read at most `max_body` bytes of the answer. `context` is an
    ssl.SSLContext (tls_context()) or None for the system's defaults."""
    sent = {"User-Agent": user_agent, "Accept": "*/*", **(headers or {})}
    started = time.perf_counter()
    try:
        with httpx.Client(verify=context if context is not None else True, timeout=timeout,
                          follow_redirects=False, trust_env=False) as client:
            with client.stream(method, url, headers=sent, content=content) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= max_body:
                        break
                elapsed = (time.perf_counter() - started) * 1000
                return Response(response.status_code,
                                {k.lower(): v for k, v in response.headers.items()},
                                elapsed, body[:max_body])
    except httpx.HTTPError as exc:
        raise RequestFailed(_reason(exc), exc) from None
    except (OSError, ValueError) as exc:  # a malformed URL or a socket error httpx let through
        raise RequestFailed(f"{type(exc).__name__}", exc) from None
