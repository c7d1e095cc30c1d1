"""The http check against the test site: gunicorn over TLS with a certificate from the test CA."""
import pytest

from checks import http
from checks.report import CheckInputError

from .assertions import assert_no_secret, criterion

LOAD = {"concurrency": 4, "requests": 40, "time_cap": 20}
HEADER_CRITERIA = {"hsts", "csp", "x_content_type_options", "frame_protection", "referrer_policy"}


def test_healthy_site_passes(site):
    report = http.run(site.url, ca_file=str(site.ca_file), http_url=site.http_url,
                      paths=["/", "/api/items"], **LOAD)
    assert report.ok, [c.to_dict() for c in report.criteria if not c.ok]
    names = {c.name for c in report.criteria}
    assert names == HEADER_CRITERIA | {"tls_certificate", "certificate_expiry", "health",
                                       "https_redirect", "error_rate", "page_p95", "api_p95"}
    figures = report.figures
    assert figures["cert_verified"] is True and 88 < figures["cert_days_left"] <= 90
    assert figures["health_status"] == 200
    assert figures["redirect_status"] == 301
    assert figures["redirect_location"].startswith(site.url.rstrip("/"))
    assert figures["requests"] == 40 and figures["error_rate_pct"] == 0.0
    assert figures["paths"]["/api/items"]["kind"] == "api"
    assert figures["paths"]["/"]["requests"] == 20
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]


def test_missing_headers_fail_by_name(site):
    report = http.run(site.url + "bare/", ca_file=str(site.ca_file), http_url=site.http_url, **LOAD)
    failed = {c.name for c in report.criteria if not c.ok}
    assert failed == {"hsts", "x_content_type_options"}
    assert criterion(report, "hsts").measured == "missing"


def test_short_hsts_fails(site):
    report = http.run(site.url, ca_file=str(site.ca_file), min_hsts_seconds=63072000, http_url=site.http_url, **LOAD)
    assert [c.name for c in report.criteria if not c.ok] == ["hsts"]


def test_expired_certificate_fails_and_says_when(site):
    report = http.run(site.expired_url, ca_file=str(site.ca_file), http_url=site.http_url, **LOAD)
    tls = criterion(report, "tls_certificate")
    assert not tls.ok and "expired" in tls.measured
    expiry = criterion(report, "certificate_expiry")
    assert not expiry.ok and expiry.measured < 0
    # The rest is still measured, over an unverified connection.
    assert criterion(report, "health").ok and criterion(report, "csp").ok


def test_certificate_not_trusted_by_the_system_store_fails(site):
    report = http.run(site.url, http_url=site.http_url, **LOAD)  # no CA file: the test CA is in no system store
    tls = criterion(report, "tls_certificate")
    assert not tls.ok and "certificate verify failed" in tls.measured
    assert report.figures["cert_verified"] is False


def test_broken_health_endpoint_fails(site):
    report = http.run(site.url, ca_file=str(site.ca_file), health_path="/healthz-broken", http_url=site.http_url, **LOAD)
    health = criterion(report, "health")
    assert not health.ok and health.measured.startswith("500")
    assert report.figures["health_status"] == 500


def test_errors_and_slow_api_fail_the_load_criteria(site):
    report = http.run(site.url, ca_file=str(site.ca_file), paths=["/", "/error", "/api/slow"],
                      concurrency=6, requests=12, time_cap=20)
    rate = criterion(report, "error_rate")
    assert not rate.ok and rate.measured == pytest.approx(100 / 3, abs=0.01)
    assert report.figures["paths"]["/error"]["errors"] == 4
    api = criterion(report, "api_p95")
    assert not api.ok and api.measured >= 600
    assert criterion(report, "page_p95").ok


def test_time_cap_bounds_the_load(site):
    report = http.run(site.url, ca_file=str(site.ca_file), paths=["/api/slow"], concurrency=2,
                      requests=1000, time_cap=1.0)
    assert report.figures["load_capped"] is True
    assert report.figures["requests"] < 20
    assert report.figures["load_seconds"] < 5


def test_http_that_does_not_redirect_fails(site):
    report = http.run(site.url, ca_file=str(site.ca_file), http_url=site.plain_url, **LOAD)
    redirect = criterion(report, "https_redirect")
    assert not redirect.ok and redirect.measured.startswith("200")


def test_nothing_listening_fails_health_and_certificate():
    report = http.run("https://127.0.0.1:1/", timeout=2, concurrency=1, requests=2)
    assert not criterion(report, "tls_certificate").ok
    assert not criterion(report, "health").ok
    assert report.figures["error_rate_pct"] == 100.0


def test_credentials_in_urls_never_reach_the_report(site):
    url = site.url.replace("https://", "https://ops:Http-Secret-9981@")
    report = http.run(url, ca_file=str(site.ca_file), http_url=site.http_url, **LOAD)
    assert report.target.startswith("https://ops:***@")
    assert_no_secret(report, "Http-Secret-9981")


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "ftp://x/", "https://", "not a url"])
def test_unusable_url_is_unusable_input(url):
    with pytest.raises(CheckInputError):
        http.run(url)


def test_missing_ca_file_is_unusable_input(site, tmp_path):
    with pytest.raises(CheckInputError, match="CA file not found"):
        http.run(site.url, ca_file=str(tmp_path / "nope.pem"))


def test_a_redirect_under_load_is_a_failure_not_a_success(site):
    report = http.run(site.url, ca_file=str(site.ca_file), http_url=site.http_url,
                      paths=["/", "/moved"], **LOAD)
    moved = report.figures["paths"]["/moved"]
    assert moved["errors"] == moved["requests"] == 20
    assert "HTTP 302 (redirect)" in moved["last_error"]
    assert not criterion(report, "error_rate").ok
    assert report.figures["paths"]["/"]["errors"] == 0


def test_the_https_redirect_is_never_skipped(site):
    # The test site listens on a non-default port: its http:// address cannot be guessed.
    report = http.run(site.url, ca_file=str(site.ca_file), **LOAD)
    redirect = criterion(report, "https_redirect")
    assert not redirect.ok and redirect.measured == "not checked"
    assert not report.ok
    assert report.figures["redirect_checked"] is False
