"""The http check: does the deployed site answer, and answer safely, over HTTPS?

Against the deployed base URL: the TLS certificate verifies (against a given CA file or the
system store) and is not about to expire; the health endpoint answers 200 within the timeout;
the security headers are present; the http:// URL redirects to https://; and a bounded load
(C concurrent clients, M requests, T seconds at most) over the listed pages and API paths
gives p50/p95/p99 and an error rate.

Requests never follow redirects (a redirect is itself something this check judges). When the
certificate does not verify, that criterion fails and the rest is still measured over an
unverified connection, so one report shows everything that is wrong.
"""
from __future__ import annotations

import datetime
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

from . import http_request
from .latency import summarize_ms
from .redact import redact_url, scrub, url_password
from .report import CheckInputError, CheckReport

USER_AGENT = "mingus-deploy-check/1"
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_BODY = 1024 * 1024  # read at most this much of a body; we time responses, not download


def run(url, health_path="/healthz", http_url=None, ca_file=None, timeout=5.0, paths=("/",),
        concurrency=10, requests=100, time_cap=30.0, page_p95_ms=2000.0, api_p95_ms=500.0,
        api_prefix="/api/", max_error_rate_pct=1.0, min_cert_days=14,
        min_hsts_seconds=15768000) -> CheckReport:
    """Check the deployed app at the https:// `url` (see the module docstring)."""
    base = _parse(url, "https")
    if http_url:
        _parse(http_url, "http")
    if ca_file and not Path(ca_file).is_file():
        raise CheckInputError(f"CA file not found: {ca_file}")
    timeout, time_cap = float(timeout), float(time_cap)
    paths = list(paths or ["/"])
    secrets = [url_password(url), url_password(http_url or "")]
    report = CheckReport("http", target=redact_url(url), options={
        "url": redact_url(url), "health_path": health_path,
        "http_url": redact_url(http_url) if http_url else None, "ca_file": ca_file,
        "timeout": timeout, "paths": paths, "concurrency": int(concurrency),
        "requests": int(requests), "time_cap": time_cap, "page_p95_ms": page_p95_ms,
        "api_p95_ms": api_p95_ms, "max_error_rate_pct": max_error_rate_pct,
        "min_cert_days": min_cert_days, "min_hsts_seconds": min_hsts_seconds})

    verified = _check_certificate(report, base, ca_file, timeout, int(min_cert_days), secrets)
    context = _context(ca_file, verify=verified)
    _check_health(report, urljoin(url, health_path), context, timeout, secrets)
    _check_headers(report, url, context, timeout, int(min_hsts_seconds), secrets)
    http_url = http_url or _default_http_url(base)
    if http_url:
        _check_redirect(report, http_url, timeout, secrets)
    else:
        # Never a silent pass: a site whose http:// address is unknown has not shown it redirects.
        report.add("https_redirect", False, "not checked", "3xx to https://",
                   "give http_url: the https URL has a non-default port, so its http:// "
                   "address cannot be guessed")
        report.problem("the HTTP->HTTPS redirect was not checked: set http_url",
                       "https_redirect")
    report.figures["redirect_checked"] = bool(http_url)
    _load(report, url, paths, context, timeout, int(concurrency), int(requests), time_cap,
          float(page_p95_ms), float(api_p95_ms), api_prefix, float(max_error_rate_pct), secrets)
    return report.finish()


def _parse(url, scheme):
    try:
        parts = urlsplit(url or "")
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise CheckInputError(f"not a valid URL: {redact_url(url)}") from None
    if parts.scheme != scheme or not parts.hostname:
        raise CheckInputError(f"expected a {scheme}:// URL with a host: {redact_url(url)}")
    return parts


def _context(ca_file, verify=True) -> ssl.SSLContext:
    return http_request.tls_context(ca_file, verify)


def _error(exc, secrets) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"certificate verify failed: {exc.verify_message}"
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        text = "timed out"
    elif isinstance(exc, http_request.RequestFailed):
        text = str(exc)
    else:
        text = f"{exc.__class__.__name__}: {exc}"
    return scrub(" ".join(text.split()), *secrets)


def _request(url, context, timeout, method="GET"):
    """(status, headers as a lower-case dict, elapsed ms) of one request, no redirects."""
    answer = http_request.request(url, method, context=context, timeout=timeout,
                                  max_body=MAX_BODY, user_agent=USER_AGENT)
    return answer.status, answer.headers, answer.elapsed_ms


def _check_certificate(report, base, ca_file, timeout, min_days, secrets) -> bool:
    host, port = base.hostname, base.port or 443
    verified, reason, der = False, "", None
    try:
        der = _peer_certificate(host, port, _context(ca_file), timeout)
        verified = True
    except ssl.SSLCertVerificationError as exc:
        reason = f"certificate verify failed: {exc.verify_message}"
    except (OSError, ssl.SSLError) as exc:
        reason = _error(exc, secrets)
    if der is None:
        try:  # still read the certificate, so the report can say what is wrong with it
            der = _peer_certificate(host, port, _context(None, verify=False), timeout)
        except (OSError, ssl.SSLError):
            der = None
    figures = report.figures
    figures["cert_verified"] = verified
    days_left = None
    if der is not None:
        cert = x509.load_der_x509_certificate(der)
        not_after = cert.not_valid_after_utc
        days_left = round((not_after - datetime.datetime.now(datetime.timezone.utc))
                          .total_seconds() / 86400, 1)
        figures.update({"cert_not_after": not_after.isoformat(), "cert_days_left": days_left,
                        "cert_subject": _common_name(cert.subject),
                        "cert_issuer": _common_name(cert.issuer)})
    trust = f"CA file {ca_file}" if ca_file else "the system trust store"
    report.add("tls_certificate", verified,
               f"valid, issued by {figures.get('cert_issuer')}" if verified else reason,
               f"verifies against {trust} for {host}")
    if not verified:
        report.problem(f"TLS certificate of {host}:{port} does not verify: {reason}",
                       "tls_certificate")
    report.add("certificate_expiry", days_left is not None and days_left >= min_days,
               days_left, f">= {min_days} days left",
               figures.get("cert_not_after", "certificate not readable"))
    if days_left is not None and days_left < min_days:
        report.problem(f"certificate expires in {days_left} days ({figures['cert_not_after']})",
                       "certificate_expiry")
    return verified


def _peer_certificate(host, port, context, timeout) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def _common_name(name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else name.rfc4514_string()


def _check_health(report, health_url, context, timeout, secrets) -> None:
    try:
        status, _, elapsed = _request(health_url, context, timeout)
    except http_request.RequestFailed as exc:
        reason = _error(exc, secrets)
        report.figures.update({"health_status": None, "health_ms": None})
        report.add("health", False, reason, f"200 within {timeout}s", redact_url(health_url))
        report.problem(f"health endpoint {redact_url(health_url)} did not answer: {reason}",
                       "health")
        return
    report.figures.update({"health_status": status, "health_ms": round(elapsed, 1)})
    ok = status == 200 and elapsed <= timeout * 1000
    report.add("health", ok, f"{status} in {elapsed:.0f} ms", f"200 within {timeout}s",
               redact_url(health_url))
    if not ok:
        report.problem(f"health endpoint {redact_url(health_url)} answered {status}", "health")


def _check_headers(report, url, context, timeout, min_hsts, secrets) -> None:
    try:
        status, headers, _ = _request(url, context, timeout)
    except http_request.RequestFailed as exc:
        reason = _error(exc, secrets)
        report.add("security_headers", False, reason, "headers readable")
        report.problem(f"cannot read headers from {redact_url(url)}: {reason}",
                       "security_headers")
        return
    get = headers.get
    report.figures["headers_status"] = status
    report.figures["headers"] = {name: get(name) for name in (
        "strict-transport-security", "content-security-policy", "x-content-type-options",
        "x-frame-options", "referrer-policy")}

    hsts = get("strict-transport-security")
    match = re.search(r"max-age\s*=\s*\"?(\d+)", hsts or "", re.IGNORECASE)
    age = int(match.group(1)) if match else None
    _header(report, "hsts", age is not None and age >= min_hsts, hsts,
            f"Strict-Transport-Security max-age >= {min_hsts}")

    csp = get("content-security-policy")
    _header(report, "csp", bool(csp and csp.strip()), csp, "Content-Security-Policy set")

    nosniff = get("x-content-type-options")
    _header(report, "x_content_type_options", (nosniff or "").strip().lower() == "nosniff",
            nosniff, "X-Content-Type-Options: nosniff")

    frame = get("x-frame-options")
    ancestors = "frame-ancestors" in (csp or "").lower()
    _header(report, "frame_protection",
            (frame or "").strip().upper() in ("DENY", "SAMEORIGIN") or ancestors,
            frame or ("CSP frame-ancestors" if ancestors else None),
            "X-Frame-Options DENY|SAMEORIGIN or CSP frame-ancestors")

    referrer = get("referrer-policy")
    # Browsers use the last policy they understand; "unsafe-url" leaks full URLs everywhere.
    last = (referrer or "").split(",")[-1].strip().lower()
    _header(report, "referrer_policy", bool(last) and last != "unsafe-url", referrer,
            "Referrer-Policy set, not unsafe-url")


def _header(report, name, ok, value, expected) -> None:
    shown = value if value is None or len(value) <= 120 else value[:117] + "..."
    report.add(name, ok, shown if shown is not None else "missing", expected)
    if not ok:
        report.problem(f"{expected}: found {shown!r}" if value else f"{expected}: header missing",
                       name)


def _default_http_url(base):
    """http://host/ for an https URL on the default port; None when it cannot be guessed."""
    if base.port not in (None, 443):
        return None
    return f"http://{base.hostname}/"


def _check_redirect(report, http_url, timeout, secrets) -> None:
    try:
        status, headers, _ = _request(http_url, None, timeout)
    except http_request.RequestFailed as exc:
        reason = _error(exc, secrets)
        report.add("https_redirect", False, reason, "3xx to https://")
        report.problem(f"{redact_url(http_url)} did not answer: {reason}", "https_redirect")
        return
    location = headers.get("location", "")
    ok = status in REDIRECT_CODES and location.lower().startswith("https://")
    report.figures.update({"redirect_status": status, "redirect_location": redact_url(location)})
    report.add("https_redirect", ok, f"{status} -> {redact_url(location) or '(no Location)'}",
               "3xx to https://")
    if not ok:
        report.problem(f"{redact_url(http_url)} answered {status} without redirecting to https",
                       "https_redirect")


def _load(report, url, paths, context, timeout, concurrency, total, time_cap, page_p95,
          api_p95, api_prefix, max_error_rate, secrets) -> None:
    """Bounded load: stop after `total` requests or `time_cap` seconds, whichever comes first."""
    results = {path: {"samples": [], "errors": 0, "sent": 0, "last_error": ""} for path in paths}
    lock = threading.Lock()
    counter = {"next": 0}
    deadline = time.monotonic() + time_cap

    def client():
        while True:
            with lock:
                index = counter["next"]
                if index >= total or time.monotonic() >= deadline:
                    return
                counter["next"] += 1
            path = paths[index % len(paths)]
            try:
                status, _, elapsed = _request(urljoin(url, path), context, timeout)
                # A redirect is not the page: under load it counts as a failure, not a success.
                failed = status >= 300
                error = f"HTTP {status}" + (" (redirect)" if 300 <= status < 400 else "") \
                    if failed else ""
            except http_request.RequestFailed as exc:
                elapsed, failed, error = None, True, _error(exc, secrets)
            with lock:
                entry = results[path]
                entry["sent"] += 1
                if elapsed is not None:
                    entry["samples"].append(elapsed)
                if failed:
                    entry["errors"] += 1
                    entry["last_error"] = error

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as executor:
        for future in [executor.submit(client) for _ in range(max(1, concurrency))]:
            future.result()
    elapsed_s = time.perf_counter() - started

    per_path, all_samples, sent, errors = {}, [], 0, 0
    for path, entry in results.items():
        stats = summarize_ms(entry["samples"])
        kind = "api" if path.startswith(api_prefix) else "page"
        per_path[path] = {"kind": kind, "requests": entry["sent"], "errors": entry["errors"],
                          "error_rate_pct": round(entry["errors"] / entry["sent"] * 100, 2)
                          if entry["sent"] else None, "last_error": entry["last_error"],
                          **{k: stats[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}}
        all_samples += entry["samples"]
        sent += entry["sent"]
        errors += entry["errors"]
    overall = summarize_ms(all_samples)
    error_rate = round(errors / sent * 100, 2) if sent else None
    report.figures.update({
        "paths": per_path, "requests": sent, "errors": errors, "error_rate_pct": error_rate,
        "p50_ms": overall["p50_ms"], "p95_ms": overall["p95_ms"], "p99_ms": overall["p99_ms"],
        "max_ms": overall["max_ms"], "rps": round(sent / elapsed_s, 1) if elapsed_s else None,
        "load_capped": sent < total, "load_seconds": round(elapsed_s, 2),
    })
    report.add("error_rate", error_rate is not None and error_rate <= max_error_rate,
               error_rate, f"<= {max_error_rate}%",
               f"{errors} of {sent} requests failed" + (" (time cap reached)" if sent < total
                                                        else ""))
    for path, figures in per_path.items():
        if figures["errors"]:
            report.problem(f"{path}: {figures['errors']} of {figures['requests']} failed "
                           f"(last: {figures['last_error']})", "error_rate", path)
    for kind, limit in (("page", page_p95), ("api", api_p95)):
        mine = {p: f for p, f in per_path.items() if f["kind"] == kind}
        if not mine:
            continue
        worst_path = max(mine, key=lambda p: mine[p]["p95_ms"] or float("inf"))
        worst = mine[worst_path]["p95_ms"]
        report.figures[f"{kind}_p95_ms"] = worst
        report.add(f"{kind}_p95", worst is not None and worst <= limit, worst,
                   f"p95 <= {limit} ms", f"slowest: {worst_path}")
        for path, figures in mine.items():
            if figures["p95_ms"] is None or figures["p95_ms"] > limit:
                report.problem(f"{path} p95 {figures['p95_ms']} ms exceeds {limit} ms",
                               f"{kind}_p95", path)
