"""Security headers neither Django nor django-csp sets, and each request's audit origin.

The Content-Security-Policy itself is django-csp's (CONTENT_SECURITY_POLICY in settings).
"""
import ipaddress
import re
import uuid
from urllib.parse import quote

from django.conf import settings
from django.http import HttpResponse

from . import audit

class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not settings.DEBUG:
            response.headers.setdefault("Cache-Control", "no-store")
        return response


# A caller-supplied request id is kept only when it looks like one (a proxy's uuid or hex), so a
# hostile header cannot put arbitrary text into the audit log.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")


def client_address(request):
    """The client's address, as audit events and login throttling see it.

    CLIENT_ADDR_HEADER (e.g. DO-Connecting-IP), when set, is a header only the trusted proxy
    writes. Else, with TRUSTED_PROXY_COUNT = N > 0 (App Platform: 1), X-Forwarded-For's N-th
    entry from the right: each trusted proxy appends the address it saw, so the entries left of
    it are whatever the client sent and are never believed. With 0 (a local run), REMOTE_ADDR.
    """
    value = ""
    header = settings.CLIENT_ADDR_HEADER
    if header:
        value = request.headers.get(header, "").split(",")[0].strip()
    count = settings.TRUSTED_PROXY_COUNT
    if not value and count > 0:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")
                if h.strip()]
        if hops:
            value = hops[-count] if len(hops) >= count else hops[0]
    value = value or request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""


class RequestOriginMiddleware:
    """Give every request an id (kept from X-Request-ID when well-formed, else new) and make it
    and the client address the origin of every audit event the request records."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        with audit.origin(request_id, client_address(request)):
            response = self.get_response(request)
        response.headers.setdefault("X-Request-ID", request_id)
        return response


# PostgreSQL text cannot hold U+0000: a NUL in any parameter would reach the database as an
# error (a 500) from whichever write took it. It is refused here, for every route at once, before
# a view reads it. JSON bodies spell it as an escape.
_JSON_NUL = re.compile(rb"\\u0000", re.IGNORECASE)
NUL_REFUSAL = "A value holds a NUL character (U+0000), which no field can store; remove it and send again."


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._holds_nul(request):
            response = HttpResponse(NUL_REFUSAL, status=400, content_type="text/plain; charset=utf-8")
            # Shown by app.js in the message area and next to what was clicked, as every refusal.
            response["X-Mingus-Message"] = "refused"
            response["X-Mingus-Message-Text"] = quote(NUL_REFUSAL)
            return response
        return self.get_response(request)

    @staticmethod
    def _holds_nul(request):
        if "\x00" in request.path or any("\x00" in k or any("\x00" in v for v in vs)
                                         for k, vs in request.GET.lists()):
            return True
        if request.method not in ("POST", "PUT", "PATCH"):
            return False
        if request.content_type == "application/json":
            return bool(_JSON_NUL.search(request.body))
        return any("\x00" in k or any("\x00" in v for v in vs if isinstance(v, str))
                   for k, vs in request.POST.lists())
