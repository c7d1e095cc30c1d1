"""The connectivity check: can the app reach the target PostgreSQL the way production will?

In order: connect and authenticate, read the server version, prove TLS is in use (the server's
own view, `pg_stat_ssl`, not the client's wish), measure `max_connections` headroom against the
pool the app will open, open that pool (`DB_POOL_SIZE` connections, all at once) and make every
connection answer, then time `SELECT 1` round trips.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from .latency import summarize_ms
from .report import CheckReport
from .pg_target import explain_connect_error, target


def run(url, ca_file=None, sslmode=None, pool_size=20, samples=50, connect_timeout=10,
        max_p95_ms=100.0, min_server_version=13, instances=1, require_tls=True,
        pool_timeout=30.0) -> CheckReport:
    """Check the target PostgreSQL at `url`.

    `ca_file` switches to sslmode=verify-full against that CA. Without `sslmode` and without a CA
    the check asks for sslmode=require when `require_tls`, else the URL's own. `pool_size`
    connections are opened at once (times `instances` for the headroom criterion); `samples`
    `SELECT 1` round trips give p50/p95, which must stay under `max_p95_ms`.
    """
    if sslmode is None and not ca_file and require_tls:
        sslmode = "require"
    tgt = target(url, sslmode=sslmode, ca_file=ca_file, connect_timeout=connect_timeout)
    pool_size, samples, instances = int(pool_size), int(samples), int(instances)
    report = CheckReport("connectivity", target=tgt.redacted, options={
        "url": tgt.redacted, "ca_file": ca_file, "sslmode": tgt.sslmode, "pool_size": pool_size,
        "samples": samples, "max_p95_ms": max_p95_ms, "min_server_version": min_server_version,
        "instances": instances, "require_tls": require_tls})
    figures = report.figures
    figures.update({"sslmode": tgt.sslmode, "tls_verified": tgt.sslmode == "verify-full"})

    started = time.perf_counter()
    try:
        conn = psycopg.connect(tgt.conninfo, autocommit=True)
    except psycopg.Error as exc:
        reason = explain_connect_error(exc, tgt)
        report.add("connect", False, "failed", "connects and authenticates", reason)
        report.problem(f"cannot connect to {tgt.redacted}: {reason}", "connect")
        return report.finish()
    figures["connect_ms"] = round((time.perf_counter() - started) * 1000, 3)

    with conn:
        # The role the checks ran as (docs/trust-boundary.md: a read-only role is the safe one).
        role, read_only = conn.execute(
            "SELECT current_user, current_setting('default_transaction_read_only')").fetchone()
        figures.update({"role": role, "role_default_read_only": read_only == "on"})
        report.add("connect", True, f"{tgt.user}@{tgt.host}:{tgt.port}/{tgt.dbname}",
                   "connects and authenticates", f"sslmode={tgt.sslmode}; as role {role}")
        _check_version(report, conn, min_server_version)
        _check_tls(report, conn, tgt, require_tls)
        _check_headroom(report, conn, pool_size * instances)
        latencies = _round_trips(conn, samples)
    _check_pool(report, tgt, pool_size, float(pool_timeout))

    stats = summarize_ms(latencies)
    figures.update({k: stats[k] for k in ("p50_ms", "p95_ms", "max_ms")})
    report.add("latency", stats["p95_ms"] is not None and stats["p95_ms"] <= float(max_p95_ms),
               stats["p95_ms"], f"p95 <= {max_p95_ms} ms",
               f"{samples} x SELECT 1: p50 {stats['p50_ms']} ms, max {stats['max_ms']} ms")
    return report.finish()


def _check_version(report, conn, minimum) -> None:
    version_num = conn.info.server_version  # e.g. 150020
    major, minor = version_num // 10000, version_num % 10000
    shown = f"{major}.{minor}"
    report.figures["server_version"] = shown
    report.figures["server_version_num"] = version_num
    report.add("server_version", major >= int(minimum), shown, f">= {minimum}")


def _check_tls(report, conn, tgt, require_tls) -> None:
    row = conn.execute(
        "SELECT ssl, version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    ).fetchone()
    in_use = bool(row and row[0])
    report.figures.update({
        "tls": in_use,
        "tls_version": row[1] if in_use else None,
        "tls_cipher": row[2] if in_use else None,
    })
    measured = f"{row[1]} {row[2]}" if in_use else "not in use"
    detail = ("server certificate verified against the CA file (verify-full)"
              if tgt.sslmode == "verify-full" else
              "server certificate not verified (give a CA file for verify-full)")
    if require_tls:
        report.add("tls", in_use, measured, "TLS in use (pg_stat_ssl.ssl = true)", detail)
        if not in_use:
            report.problem("the connection is not encrypted: the server reports ssl = false "
                           f"for this session (sslmode={tgt.sslmode})", "tls")


def _check_headroom(report, conn, needed) -> None:
    max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    current = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    ).fetchone()[0]
    # Ordinary roles cannot use the superuser slots, and a managed database's app user is one.
    headroom = max_connections - reserved - current
    report.figures.update({"max_connections": max_connections, "reserved_connections": reserved,
                           "current_connections": current, "connection_headroom": headroom})
    report.add("connection_headroom", headroom >= needed, headroom, f">= {needed} (pool)",
               f"max_connections {max_connections} - reserved {reserved} - in use {current}")
    if headroom < needed:
        report.problem(f"only {headroom} connections free, the pool needs {needed}: raise "
                       "max_connections, use a connection pooler, or lower DB_POOL_SIZE",
                       "connection_headroom")


def _round_trips(conn, samples) -> list[float]:
    timings = []
    with conn.cursor() as cur:
        for _ in range(samples):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            timings.append((time.perf_counter() - t0) * 1000)
    return timings


def _check_pool(report, tgt, size, timeout) -> None:
    """Open `size` connections at once and have every one of them answer at the same time."""
    started = time.perf_counter()
    pids, errors = set(), []
    pool = ConnectionPool(tgt.conninfo, min_size=size, max_size=size, open=False,
                          timeout=timeout, name="deploycheck", kwargs={"autocommit": True})
    try:
        pool.open(wait=True, timeout=timeout)
        opened_ms = round((time.perf_counter() - started) * 1000, 1)
        # The barrier keeps every connection checked out together, so `size` distinct backends
        # prove the pool really holds that many live connections at once.
        barrier = threading.Barrier(size, timeout=timeout)
        lock = threading.Lock()

        def use_one(_):
            with pool.connection() as conn:
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                barrier.wait()
                with lock:
                    pids.add(pid)

        with ThreadPoolExecutor(max_workers=size) as executor:
            for future in [executor.submit(use_one, i) for i in range(size)]:
                try:
                    future.result()
                except Exception as exc:  # one failed connection fails the criterion
                    errors.append(tgt.scrub(f"{exc.__class__.__name__}: {exc}"))
    except (PoolTimeout, psycopg.Error) as exc:
        errors.append(tgt.scrub(f"{exc.__class__.__name__}: {exc}"))
        opened_ms = None
    finally:
        pool.close()
    report.figures.update({"pool_size": size, "pool_connections_used": len(pids),
                           "pool_open_ms": opened_ms})
    ok = len(pids) == size and not errors
    report.add("pool", ok, len(pids), size,
               f"{size} connections opened at once, each ran a query"
               + (f"; errors: {'; '.join(errors[:3])}" if errors else ""))
    if not ok:
        report.problem(f"pool of {size}: only {len(pids)} connections answered together"
                       + (f" ({errors[0]})" if errors else ""), "pool")
