"""The app's own database, read through the configured (read-only) role: tables created,
default data present, pg_stat_statements installed and tracking, the deployed app's sessions
connected with TLS, and rows being written. Plain Python (psycopg), no Django.

Everything runs in a READ ONLY transaction, so a hostile table name or setting can never write.
Seeing other roles' sessions needs pg_read_all_stats (or the app's own role).
"""
from __future__ import annotations

import psycopg
from psycopg import sql

from .report import CheckInputError
from .pg_target import explain_connect_error, target


def _table(name: str) -> sql.Composable:
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise CheckInputError(f"not a table name: {name!r}")
    return sql.SQL(".").join(sql.Identifier(p) for p in parts)


def inspect(url, *, tables=(), seed_rows=None, app_user="", ca_file=None) -> dict:
    """verdict name -> {ok, reason, ...} for each check the inputs allow."""
    tgt = target(url, ca_file=ca_file or None, connect_timeout=10)
    try:
        conn = psycopg.connect(tgt.conninfo, autocommit=False)
    except psycopg.Error as exc:
        raise CheckInputError(explain_connect_error(exc, tgt)) from None
    out = {}
    with conn:
        conn.read_only = True
        if tables:
            missing = [t for t in tables if conn.execute(
                "SELECT to_regclass(%s)", [t]).fetchone()[0] is None]
            out["tables"] = {"ok": not missing, "reason": (
                f"missing: {', '.join(missing)}" if missing else
                f"all {len(tables)} tables exist"), "missing": missing}
        if seed_rows:
            counts, short = {}, []
            for name, least in seed_rows.items():
                if conn.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is None:
                    counts[name], least = None, int(least)
                    short.append(f"{name} (no such table)")
                    continue
                counts[name] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                    _table(name))).fetchone()[0]
                if counts[name] < int(least):
                    short.append(f"{name} has {counts[name]} rows (fewer than {least})")
            out["seed"] = {"ok": not short, "counts": counts, "reason": "; ".join(short) or
                           ", ".join(f"{k}: {v} rows" for k, v in counts.items())}
        out["statements"] = _statements(conn)
        if app_user:
            out["sessions"], out["writes"] = _sessions(conn, app_user)
        conn.rollback()
    return out


def _statements(conn) -> dict:
    installed = conn.execute("SELECT extversion FROM pg_extension "
                             "WHERE extname = 'pg_stat_statements'").fetchone()
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if not installed:
        return {"ok": False, "reason": "pg_stat_statements is not installed (CREATE EXTENSION)"}
    if "pg_stat_statements" not in preload:
        return {"ok": False, "reason": "pg_stat_statements is not in shared_preload_libraries"}
    track = conn.execute("SELECT current_setting('pg_stat_statements.track')").fetchone()[0]
    calls, statements = conn.execute("SELECT coalesce(sum(calls), 0), count(*) "
                                     "FROM pg_stat_statements").fetchone()
    ok = track != "none" and calls > 0
    return {"ok": ok, "track": track, "calls": int(calls), "statements": statements,
            "reason": f"version {installed[0]}, track={track}, {statements} statements, "
                      f"{calls} calls timed" if ok else f"track={track}, {calls} calls recorded"}


def _sessions(conn, app_user) -> tuple[dict, dict]:
    rows = conn.execute(
        "SELECT a.pid, coalesce(s.ssl, false), s.version, a.application_name "
        "FROM pg_stat_activity a LEFT JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.usename = %s AND a.backend_type = 'client backend' "
        "AND a.pid <> pg_backend_pid()", [app_user]).fetchall()
    plain = [r[0] for r in rows if not r[1]]
    sessions = {"ok": bool(rows) and not plain, "count": len(rows), "without_tls": len(plain),
                "tls_versions": sorted({r[2] for r in rows if r[2]}),
                "reason": (f"no session of {app_user} is connected" if not rows else
                           f"{len(plain)} of {len(rows)} sessions of {app_user} without TLS"
                           if plain else f"{len(rows)} sessions of {app_user}, all TLS")}
    written = conn.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0), "
                           "coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) "
                           "FROM pg_stat_user_tables").fetchone()
    writes = {"ok": written[0] > 0 and written[1] > 0, "rows_written": int(written[0]),
              "scans": int(written[1]),
              "reason": f"{written[0]} rows written, {written[1]} scans since the statistics "
                        "were reset"}
    return sessions, writes
