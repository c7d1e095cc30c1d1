"""The performance baseline against a small schema built in a fresh `chk_` database."""
import sqlite3

import psycopg
import pytest

from checks import performance
from checks.report import CheckInputError

from .assertions import assert_no_secret, criterion
from .databases import fresh_database

SCHEMA = """
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY,
                     user_id bigint NOT NULL REFERENCES users (id),
                     amount numeric(10, 2));
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE TABLE audit_notes (note text);  -- no primary key: counted, never looked up
CREATE TABLE empty_things (id int PRIMARY KEY);
CREATE SCHEMA mingus;
CREATE TABLE mingus.user_profiles (id int PRIMARY KEY, bio text);
INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 2000) g;
-- Each user's orders are spread through the table, so without the index a lookup scans it.
INSERT INTO orders (user_id, amount) SELECT (g % 2000) + 1, g % 100
  FROM generate_series(1, 300000) g;
INSERT INTO mingus.user_profiles SELECT g, 'bio ' || g FROM generate_series(1, 500) g;
ANALYZE;
"""

FAST = {"iterations": 10, "pool_requests": 60}


@pytest.fixture(scope="module")
def shop():
    """The schema with data, shared by the tests that only read it."""
    with fresh_database("chk_perf") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)
        yield url


@pytest.fixture
def own_shop(chk_database):
    """The schema with data, for a test that changes it."""
    url = chk_database("chk_perf")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return url


@pytest.fixture
def blank(chk_database):
    """An empty database: for tests that bring their own queries."""
    return chk_database("chk_perf")


def sqlite_file(path, tables):
    db = sqlite3.connect(path)
    for ddl, rows in tables:
        db.execute(ddl)
        table = ddl.split()[2]
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    db.commit()
    db.close()
    return path


def test_baseline_derives_queries_from_the_schema(shop):
    # A generous threshold: this test is about the query set, not about a busy CI machine.
    report = performance.run(shop, **FAST, max_p95_ms=1000)
    assert report.ok, [c.to_dict() for c in report.criteria if not c.ok]
    labels = set(report.figures["queries"])
    assert {"pk:public.users", "pk:public.orders", "fk:public.orders.user_id",
            "count:public.users", "count:public.orders", "count:public.audit_notes",
            "count:public.empty_things", "pk:mingus.user_profiles"} <= labels
    assert "pk:public.audit_notes" not in labels  # no primary key
    assert "pk:public.empty_things" not in labels  # nothing to look up
    orders = report.figures["queries"]["fk:public.orders.user_id"]
    assert orders["runs"] == 10 and orders["p50_ms"] <= orders["p95_ms"] <= orders["max_ms"]
    assert report.figures["pool_utilization_pct"] <= 50.0  # 10 threads, pool of 20
    assert report.figures["p95_ms"] is not None


def test_sqlite_sources_give_a_before_after_ratio(shop, tmp_path):
    legacy = sqlite_file(tmp_path / "legacy.db", [
        ("CREATE TABLE users (id integer primary key, email text)",
         [(i, f"u{i}@example.com") for i in range(1, 2001)])])
    mingus = sqlite_file(tmp_path / "mingus.db", [
        ("CREATE TABLE user_profiles (id integer primary key, bio text)",
         [(i, f"bio {i}") for i in range(1, 501)])])
    # legacy.db is mapped explicitly; mingus.db maps to the schema named after it.
    report = performance.run(shop, sqlite=[f"{legacy}=public", str(mingus)], **FAST)
    queries = report.figures["queries"]
    assert report.figures["sqlite_sources"] == {str(legacy): "public", str(mingus): "mingus"}
    for label, source in (("pk:public.users", legacy), ("count:public.users", legacy),
                          ("pk:mingus.user_profiles", mingus)):
        assert queries[label]["sqlite_source"] == str(source)
        assert queries[label]["sqlite_p50_ms"] > 0
        assert queries[label]["ratio"] > 0
    assert "ratio" not in queries["count:public.orders"]  # no such table in SQLite


def test_injected_degradation_is_flagged_by_compare(own_shop):
    baseline = performance.run(own_shop, **FAST).to_dict()
    with psycopg.connect(own_shop, autocommit=True) as conn:
        conn.execute("DROP INDEX orders_user_id_idx")
    current = performance.run(own_shop, **FAST).to_dict()

    result = performance.compare(current, baseline, degradation_pct=50)
    assert not result["ok"]
    degraded = {d["label"]: d for d in result["degraded"]}
    assert "fk:public.orders.user_id" in degraded
    flagged = degraded["fk:public.orders.user_id"]
    before = baseline["figures"]["queries"]["fk:public.orders.user_id"]["p50_ms"]
    after = current["figures"]["queries"]["fk:public.orders.user_id"]["p50_ms"]
    assert (flagged["baseline_ms"], flagged["current_ms"]) == (before, after)
    assert flagged["change_pct"] == round((after - before) / before * 100, 1) > 50
    assert "pk:public.users" not in degraded  # untouched index, sub-millisecond noise
    assert result["compared"] == len(baseline["figures"]["queries"])


def test_slow_query_fails_the_threshold(blank):
    report = performance.run(blank, default_queries=False, queries=["SELECT pg_sleep(0.12)"],
                             iterations=3, pool_requests=10, max_p95_ms=100)
    slow = criterion(report, "query_p95")
    assert not slow.ok and slow.measured >= 120
    label = performance.custom_label("SELECT pg_sleep(0.12)")
    assert report.figures["worst_query"] == label
    assert [p.path for p in report.problems if p.criterion == "query_p95"] == [label]


def test_pool_saturation_fails_utilization(blank):
    report = performance.run(blank, default_queries=False, queries=["SELECT pg_sleep(0.02)"],
                             iterations=2, concurrency=8, pool_size=4, pool_requests=40)
    utilization = criterion(report, "pool_utilization")
    assert not utilization.ok
    assert report.figures["pool_max_in_use"] == 4
    # Measured: eight threads keep all four connections busy nearly all the time.
    assert report.figures["pool_utilization_pct"] >= 80.0


def test_a_light_configured_load_passes_utilization(blank):
    report = performance.run(blank, default_queries=False, queries=["SELECT pg_sleep(0.02)"],
                             iterations=2, concurrency=2, pool_size=20, pool_requests=20)
    utilization = criterion(report, "pool_utilization")
    assert utilization.ok, utilization.to_dict()
    # Two threads can hold at most two of twenty connections: 10% at the very most.
    assert 0 < report.figures["pool_utilization_pct"] <= 10.0
    assert report.figures["pool_peak_pct"] <= 10.0


def test_the_check_never_writes(blank):
    with pytest.raises(CheckInputError, match="query 1: a query must be a read"):
        performance.run(blank, default_queries=False,
                        queries=["CREATE TABLE intruder (id int)"], iterations=1,
                        pool_requests=1)
    with psycopg.connect(blank) as conn:
        assert conn.execute("SELECT to_regclass('public.intruder')").fetchone()[0] is None


def test_password_never_reaches_the_report(shop):
    # The main server trusts local connections, so any password is accepted and ignored.
    url = shop.replace("root@", "root:Perf-Secret-Pw-3310@")
    report = performance.run(url, iterations=2, pool_requests=10)
    assert report.ok
    assert_no_secret(report, "Perf-Secret-Pw-3310")


def test_unreachable_target_fails_connect():
    report = performance.run("postgres://root:Perf-Secret-Pw-3310@127.0.0.1:1/x",
                             connect_timeout=3)
    assert not criterion(report, "connect").ok
    assert_no_secret(report, "Perf-Secret-Pw-3310")


def test_missing_sqlite_source_and_schema_are_unusable_input(shop, tmp_path):
    with pytest.raises(CheckInputError, match="SQLite source not found"):
        performance.run(shop, sqlite=[str(tmp_path / "gone.db")])
    with pytest.raises(CheckInputError, match="schema"):
        performance.run(shop, schemas=["nope"])


def _report(queries, p95=None):
    return {"figures": {"p50_ms": p95, "queries": {
        label: {"sql": f"-- {label}", "p50_ms": ms, "p95_ms": ms} for label, ms in queries.items()}}}


def test_compare_applies_threshold_and_floor():
    baseline = _report({"a": 2.0, "b": 2.0, "c": 0.05, "gone": 1.0}, p95=2.0)
    current = _report({"a": 3.5, "b": 2.9, "c": 0.5, "fresh": 9.0}, p95=3.0)
    result = performance.compare(current, baseline, degradation_pct=50)
    assert result["degraded"] == [{"label": "a", "sql": "-- a", "baseline_ms": 2.0,
                                   "current_ms": 3.5, "change_pct": 75.0}]
    assert result["compared"] == 3
    assert result["missing"] == ["gone"] and result["new"] == ["fresh"]
    assert result["overall"] == {"baseline_ms": 2.0, "current_ms": 3.0, "change_pct": 50.0}
    assert performance.compare(current, baseline, degradation_pct=80)["ok"] is True
