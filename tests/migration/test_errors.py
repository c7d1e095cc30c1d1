"""Unusable input fails fast with a message naming the file or the (redacted) URL."""
import sqlite3

import pytest

from migration import steps
from migration.errors import SourceError, TargetError


def make_db(path, rows=3000):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", ((i, "name %d" % i * 3) for i in range(rows)))
    con.commit()
    con.close()
    return path


def corrupt(path):
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, 3 * page):  # keep page 1 (the schema) readable
        data[start:start + 200] = b"\xde\xad\xbe\xef" * 50
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("step", ["backup", "assess"])
def test_a_missing_file_is_named(tmp_path, step):
    missing = tmp_path / "nope.db"
    with pytest.raises(SourceError, match=f"{missing}: no such file"):
        getattr(steps, step)({"x": missing}, tmp_path / "w")


def test_a_file_that_is_not_sqlite_is_named(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("just some text, not a database\n" * 10)
    with pytest.raises(SourceError, match=f"{bogus}: is not a SQLite database"):
        steps.assess({"x": bogus}, tmp_path / "w")


def test_an_empty_file_is_named(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="is empty"):
        steps.backup({"x": empty}, tmp_path / "w")


@pytest.mark.parametrize("step", ["backup", "assess"])
def test_a_corrupt_file_is_named(tmp_path, step):
    bad = corrupt(make_db(tmp_path / "bad.db"))
    with pytest.raises(SourceError, match=f"{bad}: is corrupt"):
        getattr(steps, step)({"x": bad}, tmp_path / "w")


def test_a_locked_file_is_named_and_nothing_is_written(tmp_path):
    db = make_db(tmp_path / "busy.db", rows=10)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SourceError, match=f"{db}: is locked by another connection"):
            steps.backup({"x": db}, tmp_path / "w", busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list((tmp_path / "w" / "backups").glob("*/*.db"))


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
    db = make_db(tmp_path / "ok.db", rows=10)
    with pytest.raises(TargetError) as exc:
        steps.run({"x": db}, "postgres://root:s3cretPW@127.0.0.1:1/x", tmp_path / "w")
    text = str(exc.value)
    assert "s3cretPW" not in text and "postgres://root:***@127.0.0.1:1/x" in text
    assert not (tmp_path / "w" / "unified_schema.sql").exists()  # failed before doing any work


def test_a_malformed_url_is_reported(tmp_path):
    db = make_db(tmp_path / "ok.db", rows=10)
    with pytest.raises(TargetError, match="postgresql://root@127.0.0.1:notaport/x: .*port"):
        steps.run({"x": db}, "postgresql://root@127.0.0.1:notaport/x", tmp_path / "w")
