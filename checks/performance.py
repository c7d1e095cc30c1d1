"""The performance baseline: how fast the target answers the app's kind of queries.

A query set is timed N times on the target: by default one derived from the target's own
schema (a primary-key lookup and a count per table, a join per foreign key), plus any SQL the
team adds. Where a SQLite source file holds the same table, the same query is timed there too
and the report gives the after/before ratio. Then threads share a connection pool to show how
much of it a given concurrency uses.

`compare()` sets a later report against a recorded baseline and names the queries that slowed
down by more than a threshold: the rollback trigger "performance degradation > 50%" reads it.

The check never writes: every session is read-only, and statements are cut off after
STATEMENT_TIMEOUT so one slow query cannot hold a production database.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from . import readonly_sql
from .latency import summarize_ms
from .report import CheckInputError, CheckReport
from .pg_target import explain_connect_error, target

STATEMENT_TIMEOUT = "30s"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


@dataclass
class Query:
    """One query of the set, in its PostgreSQL form and (for derived ones) its SQLite form."""

    label: str
    sql: str
    params: tuple = ()
    kind: str = "custom"  # pk, fk, count, custom
    schema: str = ""
    table: str = ""
    sqlite_sql: str = ""
    samples_ms: list = field(default_factory=list)
    error: str = ""


def custom_label(sql: str) -> str:
    """A stable label for a team query: the same SQL text gets the same label in every run."""
    normal = " ".join(sql.split())
    return "sql:" + hashlib.sha256(normal.encode()).hexdigest()[:10]


def run(url, queries=None, default_queries=True, schemas=None, sqlite=None, iterations=20,
        max_p95_ms=100.0, concurrency=10, pool_size=20, pool_requests=200,
        max_pool_utilization_pct=80.0, ca_file=None, sslmode=None,
        connect_timeout=10) -> CheckReport:
    """Time the query set on the target at `url` and measure pool utilization.

    `queries`: extra SQL strings. `schemas`: where to derive queries (default: every user
    schema). `sqlite`: SQLite source files for the before/after ratio, as a list of "path" or
    "path=schema" strings or a {path: schema} dict; a path alone maps to the schema named after
    the file (mingus.db -> mingus) when the target has one, else public.
    """
    tgt = target(url, sslmode=sslmode, ca_file=ca_file, connect_timeout=connect_timeout)
    iterations, concurrency, pool_size = int(iterations), int(concurrency), int(pool_size)
    try:  # refused here, before anything reaches the server
        queries = readonly_sql.check_all(list(queries or []))
    except ValueError as exc:
        raise CheckInputError(f"performance: {exc}") from None
    sources = _sqlite_sources(sqlite)
    report = CheckReport("performance", target=tgt.redacted, options={
        "url": tgt.redacted, "queries": list(queries or []), "default_queries": default_queries,
        "schemas": list(schemas or []), "sqlite": {str(p): s for p, s in sources},
        "iterations": iterations, "max_p95_ms": max_p95_ms, "concurrency": concurrency,
        "pool_size": pool_size, "pool_requests": int(pool_requests),
        "max_pool_utilization_pct": max_pool_utilization_pct})
    try:
        conn = psycopg.connect(tgt.conninfo, autocommit=True, options=_session_options())
    except psycopg.Error as exc:
        reason = explain_connect_error(exc, tgt)
        report.add("connect", False, "failed", "connects", reason)
        report.problem(f"cannot connect to {tgt.redacted}: {reason}", "connect")
        return report.finish()

    with conn:
        report.add("connect", True, f"{tgt.user}@{tgt.host}:{tgt.port}/{tgt.dbname}", "connects")
        target_schemas = _schemas(conn, schemas)
        query_set = _derive_queries(conn, target_schemas) if default_queries else []
        query_set += [Query(custom_label(q), q) for q in (queries or []) if q.strip()]
        for query in query_set:
            _time_pg(conn, query, iterations, tgt)

    mapping = _resolve_sources(sources, target_schemas)
    sqlite_figures = _time_sqlite(query_set, mapping, iterations)

    per_query = {}
    for q in query_set:
        stats = summarize_ms(q.samples_ms)
        per_query[q.label] = {"sql": q.sql, "kind": q.kind, "table": f"{q.schema}.{q.table}"
                              if q.table else "", "runs": stats["count"], "error": q.error,
                              **{k: stats[k] for k in ("p50_ms", "p95_ms", "max_ms", "mean_ms")},
                              **sqlite_figures.get(q.label, {})}
    all_samples = [s for q in query_set for s in q.samples_ms]
    overall = summarize_ms(all_samples)
    timed = [(label, f) for label, f in per_query.items() if f["p95_ms"] is not None]
    worst_label, worst = max(timed, key=lambda item: item[1]["p95_ms"], default=(None, None))
    report.figures.update({
        "queries": per_query,
        "query_count": len(query_set),
        "iterations": iterations,
        "p50_ms": overall["p50_ms"], "p95_ms": overall["p95_ms"], "max_ms": overall["max_ms"],
        "worst_p95_ms": worst["p95_ms"] if worst else None,
        "worst_query": worst_label,
        "sqlite_sources": {str(path): schema for path, schema in mapping},
    })

    errors = [q for q in query_set if q.error]
    report.add("queries_run", bool(query_set) and not errors,
               f"{len(query_set) - len(errors)} of {len(query_set)}", "every query runs",
               "nothing to measure: no tables and no queries" if not query_set else
               "; ".join(f"{q.label}: {q.error}" for q in errors[:3]))
    for q in errors:
        report.problem(f"{q.label} failed: {q.error}", "queries_run", q.label)
    slow = [(label, f) for label, f in timed if f["p95_ms"] > float(max_p95_ms)]
    report.add("query_p95", bool(timed) and not slow,
               worst["p95_ms"] if worst else None, f"every query p95 <= {max_p95_ms} ms",
               f"slowest: {worst_label}" if worst_label else "")
    for label, f in slow:
        report.problem(f"{label} p95 {f['p95_ms']} ms exceeds {max_p95_ms} ms ({f['sql'][:120]})",
                       "query_p95", label)

    _pool_utilization(report, tgt, query_set, concurrency, pool_size, int(pool_requests),
                      float(max_pool_utilization_pct))
    return report.finish()


def _session_options() -> str:
    return f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT}"


def _schemas(conn, wanted) -> list[str]:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s) "
        "AND nspname NOT LIKE 'pg_toast%%' AND nspname NOT LIKE 'pg_temp%%' ORDER BY 1",
        (list(SYSTEM_SCHEMAS),)).fetchall()
    present = [r[0] for r in rows]
    if not wanted:
        return present
    missing = [s for s in wanted if s not in present]
    if missing:
        raise CheckInputError(f"schema(s) not in the target: {', '.join(missing)}")
    return list(wanted)


def _derive_queries(conn, schemas) -> list[Query]:
    """A PK lookup and a count per table, a join per single-column foreign key."""
    tables = conn.execute(
        """SELECT c.oid, n.nspname, c.relname
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
            ORDER BY 2, 3""", (schemas,)).fetchall()
    by_oid = {oid: (schema, table) for oid, schema, table in tables}
    primary = dict(conn.execute(
        """SELECT i.indrelid, a.attname FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indisprimary AND i.indnatts = 1 AND i.indrelid = ANY(%s)""",
        (list(by_oid),)).fetchall())
    foreign = conn.execute(
        """SELECT con.conrelid, a.attname, con.confrelid, af.attname
             FROM pg_constraint con
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
             JOIN pg_attribute af ON af.attrelid = con.confrelid AND af.attnum = con.confkey[1]
            WHERE con.contype = 'f' AND cardinality(con.conkey) = 1 AND con.conrelid = ANY(%s)
            ORDER BY con.conname""", (list(by_oid),)).fetchall()

    queries = []
    for oid, (schema, table) in by_oid.items():
        qualified = pgsql.Identifier(schema, table)
        name = f"{schema}.{table}"
        queries.append(Query(f"count:{name}",
                             pgsql.SQL("SELECT count(*) FROM {}").format(qualified).as_string(conn),
                             kind="count", schema=schema, table=table,
                             sqlite_sql=f'SELECT count(*) FROM "{table}"'))
        pk = primary.get(oid)
        if pk is None:
            continue
        column = pgsql.Identifier(pk)
        sample = conn.execute(pgsql.SQL("SELECT {c} FROM {t} ORDER BY {c} DESC LIMIT 1")
                              .format(c=column, t=qualified)).fetchone()
        if sample is None:
            continue  # an empty table has nothing to look up
        queries.append(Query(f"pk:{name}", pgsql.SQL("SELECT * FROM {t} WHERE {c} = %s")
                             .format(t=qualified, c=column).as_string(conn), (sample[0],),
                             "pk", schema, table, f'SELECT * FROM "{table}" WHERE "{pk}" = ?'))
    for child_oid, fk, parent_oid, ref in foreign:
        if parent_oid not in by_oid:
            continue
        schema, table = by_oid[child_oid]
        parent_schema, parent = by_oid[parent_oid]
        child_t, parent_t = pgsql.Identifier(schema, table), pgsql.Identifier(parent_schema, parent)
        sample = conn.execute(pgsql.SQL("SELECT {c} FROM {t} WHERE {c} IS NOT NULL LIMIT 1")
                              .format(c=pgsql.Identifier(fk), t=child_t)).fetchone()
        if sample is None:
            continue
        text = pgsql.SQL("SELECT c.*, p.* FROM {child} c JOIN {parent} p ON p.{ref} = c.{fk} "
                         "WHERE c.{fk} = %s LIMIT 100").format(
            child=child_t, parent=parent_t, ref=pgsql.Identifier(ref),
            fk=pgsql.Identifier(fk)).as_string(conn)
        queries.append(Query(
            f"fk:{schema}.{table}.{fk}", text, (sample[0],), "fk", schema, table,
            f'SELECT c.*, p.* FROM "{table}" c JOIN "{parent}" p ON p."{ref}" = c."{fk}" '
            f'WHERE c."{fk}" = ? LIMIT 100' if parent_schema == schema else ""))
    return queries


def read_only_execute(conn, sql, params=None):
    """Run one query in a READ ONLY transaction that is always rolled back, as a prepared
    statement (the extended protocol carries exactly one command): whatever the text tries,
    nothing it does survives. `conn` is in autocommit mode; the rows are fetched and dropped."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        cur = conn.execute(sql, params, prepare=True)
        if cur.description:
            cur.fetchall()


def db_error(exc, tgt) -> str:
    """A database error as a report may keep it: the SQLSTATE and the primary message with every
    quoted value cut out, never DETAIL or CONTEXT (a cast error quotes the row it failed on)."""
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag is not None else None) or str(exc) or type(
        exc).__name__
    primary = _QUOTED.sub("…", " ".join(primary.split()))
    state = (diag.sqlstate if diag is not None else None) or ""
    return tgt.scrub(f"{primary} (SQLSTATE {state})" if state else primary)[:300]


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|«[^»]*»")


def _time_pg(conn, query: Query, iterations: int, tgt) -> None:
    params = query.params if query.params else None
    try:
        # One untimed run first, so the baseline measures a warm cache and a planned query.
        read_only_execute(conn, query.sql, params)
        for _ in range(iterations):
            t0 = time.perf_counter()
            read_only_execute(conn, query.sql, params)
            query.samples_ms.append((time.perf_counter() - t0) * 1000)
    except psycopg.Error as exc:
        query.error = db_error(exc, tgt)


def _sqlite_sources(sqlite) -> list[tuple[Path, str | None]]:
    if not sqlite:
        return []
    items = sqlite.items() if isinstance(sqlite, dict) else [
        tuple(s.rsplit("=", 1)) if "=" in s else (s, None) for s in sqlite]
    sources = []
    for path, schema in items:
        if not Path(path).is_file():
            raise CheckInputError(f"SQLite source not found: {path}")
        sources.append((Path(path), schema or None))
    return sources


def _resolve_sources(sources, target_schemas) -> list[tuple[Path, str]]:
    resolved = []
    for path, schema in sources:
        if schema is None:
            stem = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
            schema = stem if stem in target_schemas else "public"
        resolved.append((path, schema))
    return resolved


def _time_sqlite(query_set, mapping, iterations) -> dict:
    """{label: {sqlite_p50_ms, sqlite_p95_ms, ratio, sqlite_source}} where the table exists."""
    figures = {}
    for path, schema in mapping:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for q in query_set:
                if (q.label in figures or not q.sqlite_sql or q.schema != schema
                        or q.table not in tables or not q.samples_ms):
                    continue
                params = tuple(p if isinstance(p, (int, float, str, bytes)) else str(p)
                               for p in q.params)
                try:
                    db.execute(q.sqlite_sql, params).fetchall()
                    samples = []
                    for _ in range(iterations):
                        t0 = time.perf_counter()
                        db.execute(q.sqlite_sql, params).fetchall()
                        samples.append((time.perf_counter() - t0) * 1000)
                except sqlite3.Error as exc:
                    figures[q.label] = {"sqlite_source": str(path), "sqlite_error": str(exc)}
                    continue
                stats = summarize_ms(samples)
                pg_p50 = statistics.median(q.samples_ms)
                figures[q.label] = {
                    "sqlite_source": str(path),
                    "sqlite_p50_ms": stats["p50_ms"],
                    "sqlite_p95_ms": stats["p95_ms"],
                    # after / before: above 1 the target is slower than the SQLite it replaces.
                    "ratio": round(pg_p50 / stats["p50_ms"], 3) if stats["p50_ms"] else None,
                }
        finally:
            db.close()
    return figures


def _pool_utilization(report, tgt, query_set, concurrency, pool_size, requests, threshold):
    """`concurrency` threads (the configured load) share a pool of `pool_size`. Utilization is
    measured: the time-weighted mean of connections in use over the load, as a share of the
    pool, not the peak (a peak of `concurrency` connections says only how many threads ran)."""
    runnable = [q for q in query_set if not q.error] or [Query("select1", "SELECT 1")]
    lock = threading.Lock()
    state = {"next": 0, "in_use": 0, "max_in_use": 0, "area": 0.0, "since": None}

    def changed(delta):  # with the lock held: integrate in_use over time, then change it
        now = time.perf_counter()
        if state["since"] is not None:
            state["area"] += state["in_use"] * (now - state["since"])
        state["since"] = now
        state["in_use"] += delta
    waits, errors = [], []
    started = time.perf_counter()
    pool = ConnectionPool(tgt.conninfo, min_size=pool_size, max_size=pool_size, open=False,
                          timeout=30, name="deploycheck-perf",
                          kwargs={"autocommit": True, "options": _session_options()})

    def worker():
        while True:
            with lock:
                index = state["next"]
                if index >= requests:
                    return
                state["next"] += 1
            query = runnable[index % len(runnable)]
            t0 = time.perf_counter()
            try:
                with pool.connection() as conn:
                    with lock:
                        waits.append((time.perf_counter() - t0) * 1000)
                        changed(+1)
                        state["max_in_use"] = max(state["max_in_use"], state["in_use"])
                    try:
                        read_only_execute(conn, query.sql, query.params or None)
                    finally:
                        with lock:
                            changed(-1)
            except (psycopg.Error, PoolTimeout) as exc:
                with lock:
                    errors.append(db_error(exc, tgt)[:200])

    try:
        pool.open(wait=True, timeout=30)
        load_started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as executor:
            for future in [executor.submit(worker) for _ in range(concurrency)]:
                future.result()
    except (psycopg.Error, PoolTimeout) as exc:
        errors.append(tgt.scrub(" ".join(str(exc).split()))[:200])
    finally:
        pool.close()
    elapsed = time.perf_counter() - started
    window = (state["since"] - load_started) if state["since"] is not None else 0.0
    utilization = (round(state["area"] / (window * pool_size) * 100, 1)
                   if pool_size and window > 0 else None)
    wait = summarize_ms(waits)
    report.figures.update({
        "pool_size": pool_size, "pool_concurrency": concurrency,
        "pool_max_in_use": state["max_in_use"], "pool_utilization_pct": utilization,
        "pool_peak_pct": round(state["max_in_use"] / pool_size * 100, 1) if pool_size else None,
        "pool_wait_p95_ms": wait["p95_ms"], "pool_requests": len(waits),
        "pool_errors": len(errors),
        "pool_qps": round(len(waits) / elapsed, 1) if elapsed else None,
    })
    ok = not errors and utilization is not None and utilization <= threshold
    report.add("pool_utilization", ok, utilization, f"<= {threshold}% of {pool_size}",
               f"{concurrency} threads, mean {round(state['area'] / window, 2) if window else 0} "
               f"and peak {state['max_in_use']} connections in use, "
               f"{len(waits)} queries" + (f"; {len(errors)} errors: {errors[0]}" if errors else ""))
    if not ok:
        report.problem(f"pool utilization {utilization}% (mean in use; peak {state['max_in_use']} of "
                       f"{pool_size}) exceeds {threshold}%" if not errors else
                       f"pool queries failed: {errors[0]}", "pool_utilization")


def compare(current, baseline, degradation_pct=50, stat="p50_ms", min_delta_ms=1.0) -> dict:
    """Which queries got slower than the baseline by more than `degradation_pct` percent.

    Both arguments are performance report dicts (or CheckReports). Queries are matched by
    label. A query counts as degraded when its `stat` grew by more than `degradation_pct`
    percent AND by at least `min_delta_ms`, so that noise on sub-millisecond lookups
    (0.05 -> 0.09 ms) does not trigger a rollback. Returns
    {"ok", "stat", "degradation_pct", "compared", "degraded": [{label, sql, baseline_ms,
    current_ms, change_pct}], "missing": [...], "new": [...], "overall": {...}}.
    """
    current = current.to_dict() if hasattr(current, "to_dict") else current
    baseline = baseline.to_dict() if hasattr(baseline, "to_dict") else baseline
    now = (current.get("figures") or {}).get("queries") or {}
    before = (baseline.get("figures") or {}).get("queries") or {}
    degraded, compared = [], 0
    for label, old in before.items():
        new = now.get(label)
        if not new or old.get(stat) is None or new.get(stat) is None:
            continue
        compared += 1
        old_ms, new_ms = float(old[stat]), float(new[stat])
        change = (new_ms - old_ms) / old_ms * 100 if old_ms > 0 else float("inf")
        if change > degradation_pct and new_ms - old_ms >= min_delta_ms:
            degraded.append({"label": label, "sql": new.get("sql", ""),
                             "baseline_ms": old_ms, "current_ms": new_ms,
                             "change_pct": round(change, 1)})
    degraded.sort(key=lambda d: d["change_pct"], reverse=True)

    def overall(report_dict):
        return (report_dict.get("figures") or {}).get(stat)

    old_all, new_all = overall(baseline), overall(current)
    return {
        "ok": not degraded,
        "stat": stat,
        "degradation_pct": degradation_pct,
        "compared": compared,
        "degraded": degraded,
        "missing": sorted(set(before) - set(now)),
        "new": sorted(set(now) - set(before)),
        "overall": {
            "baseline_ms": old_all, "current_ms": new_all,
            "change_pct": round((new_all - old_all) / old_all * 100, 1)
            if old_all and new_all is not None else None,
        },
    }
