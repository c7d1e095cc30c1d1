"""The PostgreSQL side: connecting (with the password kept out of every message), the
control schema that makes runs resumable, and catalog queries used to verify what exists.
"""
from __future__ import annotations

import hashlib
import psycopg

from .ddl_names import quote_ident
from .errors import TargetError
from .redact import redact_url, scrub, url_password

CONTROL_SCHEMA = "_pgmigrate"
SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET standard_conforming_strings = on",
    "SET client_min_messages = warning",
)
# SQLSTATE classes meaning "this data was refused" (as opposed to "the server is gone").
DATA_ERROR_CLASSES = ("22", "23", "54")


def target_error(url: str, exc: BaseException, doing: str = "") -> TargetError:
    """A `TargetError` naming the redacted URL, with the driver's message scrubbed."""
    message = scrub(str(exc).strip(), url_password(url)) or type(exc).__name__
    what = f" while {doing}" if doing else ""
    return TargetError(f"{redact_url(url)}: {message.splitlines()[0]}{what}")


def is_data_error(exc: BaseException) -> bool:
    """Whether a PostgreSQL error refused the data itself (a row can be rejected for it)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in DATA_ERROR_CLASSES


def is_connection_error(exc: BaseException) -> bool:
    """Whether the server or the connection went away."""
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in ("08", "57")


def connect(url: str, autocommit: bool = True, purpose: str = "") -> psycopg.Connection:
    """Open a connection with the engine's session settings; `TargetError` on any failure."""
    if not url:
        raise TargetError("no target database URL given (--target)")
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10,
                               application_name=f"pgmigrate {purpose}".strip())
    except (psycopg.Error, ValueError) as exc:
        raise target_error(url, exc, "connecting") from None
    try:
        with conn.transaction() if not autocommit else _nullcontext():
            for stmt in SESSION_SETTINGS:
                conn.execute(stmt)
        if not autocommit:
            conn.commit()
    except psycopg.Error as exc:
        conn.close()
        raise target_error(url, exc, "setting up the session") from None
    return conn


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def advisory_key(name: str) -> int:
    """A stable 63-bit key for pg_advisory_lock from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFFFFFFFFFFFFFF


def chunk_lock_key(source: str, table: str, chunk_no: int) -> int:
    """The advisory lock a session holds while it loads one chunk (see migration.remote)."""
    return advisory_key(f"pgmigrate chunk {source}.{table}#{chunk_no}")


def control_ddl(schema: str = CONTROL_SCHEMA) -> list[str]:
    """The control tables: runs, created schemas, chunk plan, per-chunk progress, rejects."""
    s = quote_ident(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.runs (
            run_id text PRIMARY KEY, plan_sha256 text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz, status text NOT NULL DEFAULT 'running', sources jsonb)""",
        # Every object schema --apply or a run created (and only those): what rollback drops.
        f"""CREATE TABLE IF NOT EXISTS {s}.created (
            object_kind text NOT NULL, object_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
            object_schema text NOT NULL DEFAULT '', object_ident text NOT NULL DEFAULT '',
            object_table text NOT NULL DEFAULT '', seq bigserial,
            PRIMARY KEY (object_kind, object_name))""",
        f"""ALTER TABLE {s}.created ADD COLUMN IF NOT EXISTS object_schema text NOT NULL DEFAULT '',
            ADD COLUMN IF NOT EXISTS object_ident text NOT NULL DEFAULT '',
            ADD COLUMN IF NOT EXISTS object_table text NOT NULL DEFAULT ''""",
        f"""CREATE TABLE IF NOT EXISTS {s}.tables (
            source text NOT NULL, table_name text NOT NULL, target text NOT NULL, rows_at_start bigint NOT NULL,
            chunks integer NOT NULL, state text NOT NULL DEFAULT 'loading', plan_sha256 text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, table_name))""",
        f"""CREATE TABLE IF NOT EXISTS {s}.chunks (
            source text NOT NULL, table_name text NOT NULL, chunk_no integer NOT NULL, lo bigint, hi bigint,
            PRIMARY KEY (source, table_name, chunk_no))""",
        f"""CREATE TABLE IF NOT EXISTS {s}.progress (
            source text NOT NULL, table_name text NOT NULL, chunk_no integer NOT NULL, rows_read bigint,
            rows_loaded bigint, rows_rejected bigint, seconds double precision, strict boolean,
            done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, table_name, chunk_no))""",
        # Which process (host:pid) loaded a chunk; chunks a remote worker could not load.
        f"ALTER TABLE {s}.progress ADD COLUMN IF NOT EXISTS loaded_by text",
        f"""CREATE TABLE IF NOT EXISTS {s}.chunk_errors (
            id bigserial PRIMARY KEY, source text NOT NULL, table_name text NOT NULL, chunk_no integer NOT NULL,
            kind text NOT NULL, message text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
        f"""CREATE TABLE IF NOT EXISTS {s}.steps (
            source text NOT NULL, table_name text NOT NULL, step text NOT NULL, ok boolean NOT NULL,
            detail text, done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, table_name, step))""",
        f"""CREATE TABLE IF NOT EXISTS {s}.rejects (
            id bigserial PRIMARY KEY, source text NOT NULL, table_name text NOT NULL, chunk_no integer,
            src_rowid bigint, src_key jsonb, reason text NOT NULL, row_data jsonb,
            created_at timestamptz NOT NULL DEFAULT now())""",
    ]


def record_created(conn: psycopg.Connection, control: str, kind: str, schema: str, ident: str,
                   table: str = "") -> None:
    """Note in the control table that the migration created this object (rollback drops it).

    `kind` is schema, extension, table, view, index, constraint, sequence or type; `table` is
    the table an index, constraint or owned sequence belongs to.
    """
    if kind in ("schema", "extension"):
        name = ident
    else:
        name = ".".join(quote_ident(p) for p in (schema, table, ident) if p)
    conn.execute(f"INSERT INTO {quote_ident(control)}.created (object_kind, object_name, object_schema, object_ident, "
                 f"object_table) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                 (kind, name, schema if kind != "schema" else ident, ident, table))


def owned_sequences(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The sequences a table owns (identity and serial columns); they go when the table goes."""
    return [r[0] for r in conn.execute(
        "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid "
        "WHERE d.classid = 'pg_class'::regclass AND d.refobjid = to_regclass(%s) AND s.relkind = 'S' "
        "ORDER BY s.relname", (f"{quote_ident(schema)}.{quote_ident(table)}",))]


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None


def table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')", (schema, table)).fetchone() is not None


def target_columns(conn: psycopg.Connection, schema: str, table: str) -> list[dict]:
    """Columns of a target table in order: name, type (format_type), not null, generated, identity."""
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated, a.attidentity
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (schema, table)).fetchall()
    return [{"name": r[0], "type": r[1], "notnull": r[2], "generated": r[3] == "s", "identity": r[4] != ""}
            for r in rows]


def existing_constraints(conn: psycopg.Connection, schemas: list[str]) -> dict[tuple[str, str], dict]:
    """{(schema, constraint name): {table, type, validated}} for the given schemas."""
    rows = conn.execute(
        """SELECT n.nspname, con.conname, cl.relname, con.contype, con.convalidated
           FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
           JOIN pg_class cl ON cl.oid = con.conrelid WHERE n.nspname = ANY(%s)""", (schemas,)).fetchall()
    return {(r[0], r[1]): {"table": r[2], "type": r[3], "validated": r[4]} for r in rows}


def existing_indexes(conn: psycopg.Connection, schemas: list[str]) -> dict[tuple[str, str], str]:
    """{(schema, index name): table name} for the given schemas."""
    rows = conn.execute("SELECT schemaname, indexname, tablename FROM pg_indexes WHERE schemaname = ANY(%s)",
                        (schemas,)).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def existing_views(conn: psycopg.Connection, schemas: list[str]) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT schemaname, viewname FROM pg_views WHERE schemaname = ANY(%s)", (schemas,)).fetchall()
    return {(r[0], r[1]) for r in rows}


def error_text(exc: BaseException) -> str:
    """PostgreSQL's primary message plus detail, one line."""
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.message_primary:
        text = diag.message_primary
        if diag.message_detail:
            text += f" ({diag.message_detail})"
        return text
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

