"""Rollback drops exactly what the migration created, never with CASCADE; its rehearsal changes nothing.

A source named `shop` is migrated into a schema `shop` that existed before, holding a table and a
view of its own: they must survive rollback with their rows. Through `manage.py pgmigrate`, as an
operator runs it (exit 0 clean, 1 refused).
"""
import json
import sqlite3

import pytest

from migration import steps

from .conftest import create_database, drop_database, manage, pg


@pytest.fixture
def target(tmp_path):
    name = create_database("rollback")
    yield f"postgresql://root@127.0.0.1:5432/{name}"
    drop_database(name)


def _source(path):
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                             total REAL);
        CREATE INDEX orders_customer_idx ON orders (customer_id);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 10;
        INSERT INTO customers (name) VALUES ('ann'), ('bob');
        INSERT INTO orders VALUES (1, 1, 5.0), (2, 2, 50.0);
    """)
    con.commit()
    con.close()
    return path


@pytest.fixture
def migrated(tmp_path, target):
    """`shop` migrated into a schema that already held legacy.accounts and a view on it."""
    with pg(target) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute("CREATE TABLE shop.legacy_accounts (id int PRIMARY KEY, email text)")
        conn.execute("INSERT INTO shop.legacy_accounts VALUES (1, 'a@example.com'), (2, 'b@example.com')")
        conn.execute("CREATE VIEW shop.legacy_emails AS SELECT email FROM shop.legacy_accounts")
    sources = {"shop": _source(tmp_path / "shop.db")}
    workdir = tmp_path / "work"
    assert steps.backup(sources, workdir).ok
    schema = steps.schema(sources, target, workdir, apply=True)
    assert schema.ok, schema.problems
    run = steps.run(sources, target, workdir, workers=2)
    assert run.ok, run.problems
    return {"sources": sources, "workdir": workdir, "url": target}


def relations(url, schema="shop"):
    with pg(url) as conn:
        return {r[0]: r[1] for r in conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'S')", (schema,))}


def rollback(m, *extra):
    return manage("rollback", "--source", f"shop={m['sources']['shop']}", "--target", m["url"],
                  "--workdir", m["workdir"], "--json", *extra)


def test_the_control_table_records_what_schema_apply_and_the_run_created(migrated):
    with pg(migrated["url"]) as conn:
        created = {(r[0], r[1]) for r in conn.execute("SELECT object_kind, object_name FROM _pgmigrate.created")}
    assert {("table", "shop.customers"), ("table", "shop.orders"), ("view", "shop.big_orders"),
            ("index", "shop.orders.orders_customer_idx"), ("sequence", "shop.customers.customers_id_seq")} <= created
    assert not {o for o in created if "legacy" in o[1]}
    assert ("schema", "shop") not in created  # it existed before


def test_rehearsal_changes_nothing_and_says_what_would_be_dropped(migrated):
    before = relations(migrated["url"])
    source_bytes = migrated["sources"]["shop"].read_bytes()
    out = rollback(migrated, "--dry-run")
    assert out.returncode == 0, out.stderr + out.stdout
    report = json.loads(out.stdout)
    assert report["dry_run"] and report["dependants"] == []
    assert {"table shop.customers", "table shop.orders", "view shop.big_orders"} <= set(report["dropped"])
    assert not [d for d in report["dropped"] if "legacy" in d]
    assert any("rolled back" in a for a in report["target_actions"])
    assert relations(migrated["url"]) == before
    assert migrated["sources"]["shop"].read_bytes() == source_bytes
    assert not list(migrated["sources"]["shop"].parent.glob("*.pre-rollback-*"))


def test_rollback_drops_only_what_the_migration_made_and_pre_existing_objects_keep_their_rows(migrated):
    out = rollback(migrated)
    assert out.returncode == 0, out.stderr + out.stdout
    assert relations(migrated["url"]) == {"legacy_accounts": "r", "legacy_emails": "v"}
    with pg(migrated["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM shop.legacy_accounts").fetchone()[0] == 2
        assert [r[0] for r in conn.execute("SELECT email FROM shop.legacy_emails ORDER BY 1")] == [
            "a@example.com", "b@example.com"]
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = '_pgmigrate'").fetchone()
    assert list(migrated["sources"]["shop"].parent.glob("shop.db.pre-rollback-*"))


def test_rollback_refuses_with_exit_1_listing_dependants_and_changes_nothing(migrated):
    with pg(migrated["url"]) as conn:
        conn.execute("CREATE VIEW shop.report AS SELECT count(*) FROM shop.orders")
        conn.execute("CREATE TABLE public.audit (order_id int REFERENCES shop.customers (id))")
    before = relations(migrated["url"])
    for extra in (("--dry-run",), ()):
        out = rollback(migrated, *extra)
        assert out.returncode == 1, out.stderr + out.stdout
        report = json.loads(out.stdout)
        assert any("view shop.report depends on table shop.orders" in d for d in report["dependants"]), report
        assert any("refused" in p and "view shop.report" in p for p in report["problems"])
        assert relations(migrated["url"]) == before
        assert not list(migrated["sources"]["shop"].parent.glob("*.pre-rollback-*"))
    with pg(migrated["url"]) as conn:
        conn.execute("DROP VIEW shop.report")
    out = rollback(migrated)
    assert out.returncode == 1
    assert any("constraint audit_order_id_fkey on table audit depends on" in d
               for d in json.loads(out.stdout)["dependants"])
    with pg(migrated["url"]) as conn:
        assert conn.execute("SELECT count(*) FROM shop.orders").fetchone()[0] == 2
