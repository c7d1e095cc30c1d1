"""Loading one chunk of one table, and the per-table work after the data (keys, indexes,
identities, foreign keys). These functions run inside worker processes (or inline).

Exactly-once: a chunk's rows, its rejects and its row in the control table ``progress`` are
written in one transaction, and the progress row is inserted *first*. A second loader of the
same chunk (a resumed run while an orphaned worker is still alive) blocks on that row and
then skips the chunk, so a chunk is committed once or not at all, whatever gets killed when.

Fast path: SQLite prints the COPY lines (`fastpath`); rows whose values it cannot vouch for
go through `convert` one by one. If PostgreSQL refuses a chunk, the chunk is redone through
`convert`, and batches PostgreSQL still refuses are halved until the refused rows are found;
each becomes a reject with PostgreSQL's reason. No row is dropped without a record.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from queue import Queue
from typing import Optional

import psycopg
from psycopg.copy import QueuedLibpqWriter

from . import convert, fastpath
from .catalog import qi
from .ddl_names import quote_ident
from .sources import describe_sqlite_error
from .target import chunk_lock_key, error_text, is_data_error
from .workers import WorkContext

COPY_QUEUE_ITEMS = 48  # x 128 KiB: what may wait between SQLite and the socket


class BoundedQueuedWriter(QueuedLibpqWriter):
    """psycopg's threaded COPY writer with a short queue, so memory stays bounded."""

    def __init__(self, cursor, **kwargs):
        super().__init__(cursor, **kwargs)
        self._queue = Queue(maxsize=COPY_QUEUE_ITEMS)


@dataclass
class TableJob:
    """What a worker needs to load one table (picklable)."""

    key: str
    source: str
    path: str
    table: str
    target: str  # quoted schema.table
    columns: list  # fastpath.ColumnSpec, loaded columns only
    rowid_name: Optional[str]
    key_columns: list  # source key columns (keyset batching, reject keys)
    batch_rows: int = 20000
    batch_width: int = 20000
    control: str = "_pgmigrate"


@dataclass
class ChunkResult:
    key: str
    chunk_no: int
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    skipped: bool = False
    strict: bool = False
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)  # which loader process: the run counts them


def _ranges(job: TableJob, lo: Optional[int], hi: Optional[int]):
    """(predicate, params) of each batch of a chunk."""
    if job.rowid_name and lo is not None:
        rid = qi(job.rowid_name)
        start = lo
        while start <= hi:
            end = min(hi, start + job.batch_width - 1)
            yield f"{rid} BETWEEN ? AND ?", (start, end)
            start = end + 1
        return
    yield "1", ()


def _keyset_ranges(con: sqlite3.Connection, job: TableJob):
    """Batches of a table without a usable rowid, by ranges of its key."""
    if not job.key_columns:
        yield "1", ()
        return
    keys = ", ".join(qi(k) for k in job.key_columns)
    marks = ", ".join("?" for _ in job.key_columns)
    last = None
    while True:
        cond, params = ("1", ()) if last is None else (f"({keys}) > ({marks})", tuple(last))
        row = con.execute(f"SELECT {keys} FROM {qi(job.table)} WHERE {cond} ORDER BY {keys} "
                          f"LIMIT 1 OFFSET {job.batch_rows - 1}", params).fetchone()
        if row is None:
            yield cond, params
            return
        yield f"{cond} AND ({keys}) <= ({marks})", params + tuple(row)
        last = row


def batch_ranges(con, job: TableJob, lo, hi):
    if job.rowid_name:
        return _ranges(job, lo, hi)
    return _keyset_ranges(con, job)


def _copy_sql(job: TableJob) -> str:
    cols = ", ".join(quote_ident(c.target) for c in job.columns)
    return f"COPY {job.target} ({cols}) FROM STDIN"


def _guard_case(guard: Optional[str]) -> str:
    return "1" if guard is None else f"CASE WHEN {guard} THEN 1 ELSE 0 END"


def load_chunk(ctx: WorkContext, job: TableJob, chunk_no: int, lo: Optional[int], hi: Optional[int]) -> dict:
    """Load one chunk in one transaction; skip it if another transaction already loaded it."""
    t0 = time.monotonic()
    res = ChunkResult(key=job.key, chunk_no=chunk_no)
    conn = ctx.pg()
    con = ctx.sqlite(job.path)
    ctl = quote_ident(job.control)
    with conn.transaction():
        # Held until this transaction ends: a coordinator sending chunks to remote workers sees
        # that someone is loading this one (migration.remote).
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (chunk_lock_key(job.source, job.table, chunk_no),))
        claimed = conn.execute(
            f"INSERT INTO {ctl}.progress (source, table_name, chunk_no, loaded_by) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT DO NOTHING RETURNING 1",
            (job.source, job.table, chunk_no, f"{socket.gethostname()}:{os.getpid()}")).fetchone()
        if not claimed:
            res.skipped = True
            return res.__dict__
        try:
            # SQLite reads of one chunk see one snapshot.
            con.execute("BEGIN")
            try:
                with conn.transaction():
                    _fast_copy(ctx, conn, con, job, lo, hi, res)
            except psycopg.Error as exc:
                if not is_data_error(exc):
                    raise
                ctx.send({"type": "log", "level": "info",
                          "message": f"{job.key} chunk {chunk_no}: PostgreSQL refused a batch ({error_text(exc)}); "
                                     f"converting this chunk row by row"})
                ctx.send({"type": "rows", "table": job.key, "read": -res.read, "rejected": -res.rejected})
                res.read = res.loaded = res.rejected = 0
                res.strict = True
                _strict_copy(ctx, conn, con, job, chunk_no, lo, hi, None, res)
        except sqlite3.Error as exc:
            raise describe_sqlite_error(job.path, exc) from None
        finally:
            if con.in_transaction:
                con.execute("COMMIT")
        if res.read != res.loaded + res.rejected:
            raise RuntimeError(f"{job.key} chunk {chunk_no}: read {res.read} rows but loaded {res.loaded} and "
                               f"rejected {res.rejected}; refusing to commit")
        res.seconds = round(time.monotonic() - t0, 3)
        conn.execute(f"UPDATE {ctl}.progress SET rows_read = %s, rows_loaded = %s, rows_rejected = %s, "
                     f"seconds = %s, strict = %s WHERE source = %s AND table_name = %s AND chunk_no = %s",
                     (res.read, res.loaded, res.rejected, res.seconds, res.strict, job.source, job.table, chunk_no))
    return res.__dict__


def _fast_copy(ctx, conn, con, job: TableJob, lo, hi, res: ChunkResult) -> None:
    line, guard = fastpath.copy_line(job.columns)
    ok = _guard_case(guard)
    # LIMIT -1 keeps SQLite from flattening the subquery, which would compute each line twice.
    sql = (f"SELECT count(*), count(line), group_concat(line, char(10)) FROM "
           f"(SELECT CASE WHEN {ok} THEN {line} END AS line FROM {qi(job.table)} WHERE {{cond}} LIMIT -1)")
    odd_ranges = []
    with conn.cursor() as cur:
        with cur.copy(_copy_sql(job), writer=BoundedQueuedWriter(cur)) as copy:
            for cond, params in batch_ranges(con, job, lo, hi):
                ctx.check()
                n, good, blob = con.execute(sql.format(cond=cond), params).fetchone()
                if good:
                    copy.write(blob)
                    copy.write(b"\n")
                res.read += n
                res.loaded += good
                if n != good:
                    odd_ranges.append((cond, params))
                ctx.send({"type": "rows", "table": job.key, "read": n, "bytes": len(blob or b"")})
    for cond, params in odd_ranges:
        # These rows were counted as read above; the strict path adds them as loaded or rejected.
        _strict_copy(ctx, conn, con, job, None, lo, hi, (cond, params, guard), res, count_read=False)


def _strict_rows(con, job: TableJob, cond: str, params: tuple, guard: Optional[str]):
    sel = [qi(job.rowid_name) if job.rowid_name else "NULL"] + [qi(k) for k in job.key_columns]
    for col in job.columns:
        sel.extend(fastpath.strict_select(col))
    where = cond if guard is None else f"({cond}) AND NOT ({_guard_case(guard)})"
    return con.execute(f"SELECT {', '.join(sel)} FROM {qi(job.table)} WHERE {where}", params)


def _strict_copy(ctx, conn, con, job: TableJob, chunk_no, lo, hi, only, res: ChunkResult, count_read=True) -> None:
    """Convert rows in Python; rows that fail become rejects. `only` limits to one batch's odd rows."""
    nkey = 1 + len(job.key_columns)
    ranges = [only[:2]] if only else batch_ranges(con, job, lo, hi)
    guard = only[2] if only else None
    for cond, params in ranges:
        ctx.check()
        cur = _strict_rows(con, job, cond, params, guard)
        while True:
            rows = cur.fetchmany(2000)
            if not rows:
                break
            lines, rejects = [], []
            for row in rows:
                try:
                    fields = []
                    for k, col in enumerate(job.columns):
                        typ, value = row[nkey + 2 * k], row[nkey + 2 * k + 1]
                        typ = typ.decode() if isinstance(typ, bytes) else typ
                        if value is None and col.notnull:
                            raise convert.Reject(f"NULL in NOT NULL column {col.target}")
                        fields.append(convert.copy_field(col.kind, col.params, typ, value))
                    lines.append(("\t".join(fields).encode("utf-8"), row))
                except convert.Reject as exc:
                    rejects.append((row, str(exc)))
            refused = _copy_bisect(conn, job, lines)
            rejects.extend(refused)
            if rejects:
                _insert_rejects(conn, job, res.chunk_no if chunk_no is None else chunk_no, rejects, nkey)
            if count_read:
                res.read += len(rows)
            res.loaded += len(lines) - len(refused)
            res.rejected += len(rejects)
            ctx.send({"type": "rows", "table": job.key, "read": len(rows) if count_read else 0,
                      "rejected": len(rejects)})


def _copy_bisect(conn, job: TableJob, lines: list) -> list:
    """COPY the lines; return (row, reason) for each line PostgreSQL refuses, found by halving."""
    if not lines:
        return []
    try:
        with conn.transaction():
            with conn.cursor() as cur, cur.copy(_copy_sql(job)) as copy:
                copy.write(b"".join(line + b"\n" for line, _ in lines))
        return []
    except psycopg.Error as exc:
        if not is_data_error(exc):
            raise
        if len(lines) == 1:
            return [(lines[0][1], f"PostgreSQL refused the row: {error_text(exc)}")]
    mid = len(lines) // 2
    return _copy_bisect(conn, job, lines[:mid]) + _copy_bisect(conn, job, lines[mid:])


def _insert_rejects(conn, job: TableJob, chunk_no: int, rejects: list, nkey: int) -> None:
    ctl = quote_ident(job.control)
    rows = []
    for row, reason in rejects:
        rowid = row[0]
        key = {k: convert.jsonable(v) for k, v in zip(job.key_columns, row[1:nkey])} if job.key_columns else None
        data = {col.source: convert.jsonable(row[nkey + 2 * k + 1]) for k, col in enumerate(job.columns)}
        rows.append((job.source, job.table, chunk_no, rowid, json.dumps(key) if key else None, reason,
                     json.dumps(data, ensure_ascii=False)))
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {ctl}.rejects (source, table_name, chunk_no, src_rowid, src_key, reason, row_data) "
                        f"VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)


# ---- after the data ----------------------------------------------------------------------

def _exists(conn, schema: str, section: str, name: str) -> bool:
    if section == "index":
        q = "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s"
    else:
        q = ("SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
             "WHERE n.nspname = %s AND c.conname = %s")
    return conn.execute(q, (schema, name)).fetchone() is not None


_KEY_SQL = re.compile(r"^ALTER TABLE (?P<table>.+?) ADD CONSTRAINT (?P<name>.+?) (?P<what>PRIMARY KEY|UNIQUE) "
                      r"(?P<cols>\(.*\))$", re.DOTALL)


def build_object(ctx: WorkContext, key: str, schema: str, statement: dict) -> dict:
    """Create one key or index of a loaded table (nothing if it exists already).

    A primary key or unique constraint is built as a unique index first and then attached
    (USING INDEX): index builds share their lock, so the keys and indexes of one table can be
    built by several workers at once.
    """
    conn = ctx.pg()
    name, section, sql = statement["object"], statement["section"], statement["sql"]
    out = {"key": key, "object": name, "ok": True, "error": None}
    if _exists(conn, schema, section, name):
        return out
    m = None
    try:
        m = _KEY_SQL.match(sql) if section == "key" else None
        if m:
            with conn.transaction():
                conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {m['name']} ON {m['table']} {m['cols']}")
            with conn.transaction():
                conn.execute(f"ALTER TABLE {m['table']} ADD CONSTRAINT {m['name']} {m['what']} USING INDEX {m['name']}")
        else:
            with conn.transaction():
                conn.execute(sql)
    except psycopg.Error as exc:
        if not (is_data_error(exc) or getattr(exc, "sqlstate", "")[:2] == "42"):
            raise
        out.update(ok=False, error=error_text(exc))
        if m:  # do not leave a half-made key behind
            with conn.transaction():
                conn.execute(f"DROP INDEX IF EXISTS {quote_ident(schema)}.{m['name']}")
    return out


def settle_table(ctx: WorkContext, key: str, schema: str, target: str, identity: list) -> dict:
    """Move identity sequences past the largest key (and SQLite's AUTOINCREMENT counter); ANALYZE."""
    conn = ctx.pg()
    qualified = f"{quote_ident(schema)}.{quote_ident(target)}"
    for col, floor in identity:
        c = quote_ident(col)
        with conn.transaction():
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), greatest(coalesce(max({c}), 0), %s, 1), "
                f"coalesce(max({c}), %s) IS NOT NULL) FROM {qualified}",
                (qualified, col, floor or 0, floor))
    with conn.transaction():
        conn.execute(f"ANALYZE {qualified}")
    return {"key": key}


def add_foreign_key(ctx: WorkContext, key: str, schema: str, target: str, statement: dict, check_sql: str) -> dict:
    """Add a foreign key without checking, then validate it; an invalid one stays NOT VALID."""
    conn = ctx.pg()
    name = statement["object"]
    out = {"key": key, "object": name, "added": False, "validated": False, "violations": 0, "error": None}
    row = conn.execute("SELECT c.convalidated FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                       "WHERE n.nspname = %s AND c.conname = %s", (schema, name)).fetchone()
    try:
        if row is None:
            with conn.transaction():
                conn.execute(statement["sql"] + " NOT VALID")
        out["added"] = True
        if row is not None and row[0]:
            out["validated"] = True
            return out
        with conn.transaction():
            conn.execute(f"ALTER TABLE {quote_ident(schema)}.{quote_ident(target)} VALIDATE CONSTRAINT {quote_ident(name)}")
        out["validated"] = True
    except psycopg.Error as exc:
        if not (is_data_error(exc) or getattr(exc, "sqlstate", "")[:2] == "42"):
            raise
        out["error"] = error_text(exc)
        if out["added"]:
            out["violations"] = conn.execute(check_sql).fetchone()[0]
    return out



