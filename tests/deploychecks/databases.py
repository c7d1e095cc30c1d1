"""Fresh `chk_` databases on the main PostgreSQL server, for tests that need their own."""
import contextlib
import uuid

import psycopg

MAIN_PG = "postgres://root@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def fresh_database(prefix="chk_dc"):
    """A new `chk_`-prefixed database on the main server (its URL), dropped on exit.

    Other agents share the server, so every name is unique and the drop uses FORCE in case a
    check left a connection behind.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(MAIN_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://root@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(MAIN_PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
