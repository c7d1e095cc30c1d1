"""A tiny WSGI app the http check is tested against, served by gunicorn over TLS.

    /healthz          200          /healthz-broken  500
    /api/items        200 JSON     /api/slow        200 after 0.6 s (over the 500 ms API limit)
    /error            500
    /bare/...         200 without HSTS and X-Content-Type-Options
    anything else     200 HTML with every security header

Served over plain HTTP with SITE_REDIRECT_TO set, every request is redirected there (301).
"""
import json
import os
import time

SECURITY_HEADERS = [
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]
BARE_DROPS = {"Strict-Transport-Security", "X-Content-Type-Options"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    redirect_to = os.environ.get("SITE_REDIRECT_TO")
    if redirect_to and environ.get("wsgi.url_scheme") == "http":
        start_response("301 Moved Permanently", [("Location", redirect_to + path),
                                                 ("Content-Length", "0")])
        return [b""]
    status, content_type, body = "200 OK", "text/html", b"<!doctype html><title>ok</title>"
    if path == "/healthz":
        content_type, body = "text/plain", b"ok"
    elif path in ("/healthz-broken", "/error"):
        status, content_type, body = "500 Internal Server Error", "text/plain", b"broken"
    elif path == "/moved":
        start_response("302 Found", [("Location", "/"), ("Content-Length", "0")])
        return [b""]
    elif path == "/api/items":
        content_type, body = "application/json", json.dumps({"items": [1, 2, 3]}).encode()
    elif path == "/api/slow":
        time.sleep(0.6)  # the app being slow is the behaviour under test, not synchronisation
        content_type, body = "application/json", b"{}"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    drops = BARE_DROPS if path.startswith("/bare/") else set()
    headers += [(k, v) for k, v in SECURITY_HEADERS if k not in drops]
    start_response(status, headers)
    return [body]
