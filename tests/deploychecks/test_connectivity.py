"""The connectivity check against a TLS PostgreSQL cluster started for the tests and the plain
main server on 127.0.0.1:5432 (which has ssl = off)."""
import psycopg
import pytest

from checks import connectivity
from checks.report import CheckInputError

from .assertions import assert_no_secret, criterion

MAIN = "127.0.0.1:5432"


def test_main_server_really_has_no_tls():
    # The failing case below depends on it; if someone turns TLS on, this says why it broke.
    with psycopg.connect(f"postgres://root@{MAIN}/postgres") as conn:
        assert conn.execute("SHOW ssl").fetchone()[0] == "off"


def test_tls_cluster_with_verify_full_passes(tls_postgres):
    report = connectivity.run(tls_postgres.url(), ca_file=str(tls_postgres.ca_file))
    assert report.ok, [c.to_dict() for c in report.criteria if not c.ok]
    figures = report.figures
    assert figures["tls"] is True and figures["tls_verified"] is True
    assert figures["sslmode"] == "verify-full"
    assert figures["tls_version"].startswith("TLSv1.")
    assert figures["server_version"].startswith("15.")
    assert figures["pool_connections_used"] == 20
    assert figures["max_connections"] == 40
    assert figures["p95_ms"] is not None and figures["p95_ms"] >= figures["p50_ms"]
    assert {c.name for c in report.criteria} == {
        "connect", "server_version", "tls", "connection_headroom", "pool", "latency"}
    assert_no_secret(report, tls_postgres.password)


def test_require_against_plain_server_fails_clearly():
    report = connectivity.run(f"postgres://root:not-used-pw-77@{MAIN}/postgres", sslmode="require")
    found = criterion(report, "connect")
    assert not found.ok
    assert "does not offer TLS" in found.detail and "sslmode=require" in found.detail
    assert_no_secret(report, "not-used-pw-77")


def test_session_without_tls_fails_the_tls_criterion(tls_postgres):
    report = connectivity.run(tls_postgres.url(), sslmode="disable", pool_size=2)
    assert criterion(report, "connect").ok
    tls = criterion(report, "tls")
    assert not tls.ok and tls.measured == "not in use"
    assert report.figures["tls"] is False


def test_wrong_password_fails_without_showing_it(tls_postgres):
    wrong = "Wrong-Password-Zq81"
    report = connectivity.run(tls_postgres.url(password=wrong), ca_file=str(tls_postgres.ca_file))
    found = criterion(report, "connect")
    assert not found.ok
    assert "authentication failed" in found.detail
    assert report.target == f"postgres://root:***@127.0.0.1:{tls_postgres.port}/postgres"
    assert_no_secret(report, wrong, tls_postgres.password)


def test_wrong_host_fails_clearly(tls_postgres):
    report = connectivity.run(f"postgres://root:{tls_postgres.password}@127.0.0.1:1/postgres",
                              connect_timeout=3)
    found = criterion(report, "connect")
    assert not found.ok and "nothing is listening" in found.detail
    assert_no_secret(report, tls_postgres.password)


def test_certificate_from_another_ca_is_refused(tls_postgres, pki):
    report = connectivity.run(tls_postgres.url(), ca_file=str(pki.other_ca_file))
    found = criterion(report, "connect")
    assert not found.ok and "certificate" in found.detail
    assert_no_secret(report, tls_postgres.password)


def test_headroom_counts_every_instance_pool(tls_postgres):
    # 40 max_connections - 3 reserved leaves under 2 x 20.
    report = connectivity.run(tls_postgres.url(), ca_file=str(tls_postgres.ca_file), instances=2)
    headroom = criterion(report, "connection_headroom")
    assert not headroom.ok and headroom.expected == ">= 40 (pool)"
    assert headroom.measured == report.figures["connection_headroom"] < 40
    assert criterion(report, "pool").ok  # one pool of 20 still fits


def test_pool_larger_than_the_server_allows_fails(tls_postgres):
    report = connectivity.run(tls_postgres.url(), ca_file=str(tls_postgres.ca_file),
                              pool_size=45, pool_timeout=2, samples=5)
    pool = criterion(report, "pool")
    assert not pool.ok and pool.measured < 45
    assert_no_secret(report, tls_postgres.password)


@pytest.mark.parametrize("url", [
    "mysql://root:Secret-In-Url-1@127.0.0.1:3306/db",
    "postgres://root:Secret-In-Url-1@/db",
    "not a url at all",
])
def test_unusable_url_raises_with_password_redacted(url):
    with pytest.raises(CheckInputError) as caught:
        connectivity.run(url)
    assert "Secret-In-Url-1" not in str(caught.value)


def test_missing_ca_file_is_unusable_input(tmp_path):
    with pytest.raises(CheckInputError, match="CA file not found"):
        connectivity.run(f"postgres://root@{MAIN}/postgres", ca_file=str(tmp_path / "ca.pem"))
