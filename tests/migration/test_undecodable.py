"""SQLite keeps whatever bytes it was given as TEXT, and any storage class in any column: text
that is not UTF-8, blobs in an ANY column, REAL values in a text column whose chunk has to be
converted row by row. Every step finishes with a report (never an internal error), every good
value arrives exactly, and every bad one is rejected with its reason."""
import json
import sqlite3
from pathlib import Path

import pytest

from migration import steps

from .conftest import create_database, drop_database, pg


def build(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, note);
        CREATE TABLE kv (k TEXT PRIMARY KEY, v ANY) WITHOUT ROWID;
        INSERT INTO notes VALUES (1, 'plain', 'text');
        -- a REAL in an untyped column that holds text: loaded as SQLite prints it
        INSERT INTO notes VALUES (2, 'real', 3.5);
        -- not UTF-8, in a declared TEXT column (with a NUL, so assess samples it) and in an
        -- untyped one (same chunk as row 2)
        INSERT INTO notes VALUES (3, CAST(X'fffe0041' AS TEXT), 'ok');
        INSERT INTO notes VALUES (4, 'bad note', CAST(X'c3' AS TEXT));
        INSERT INTO kv VALUES ('a', X'00ff'), ('b', 'text');
    """)
    con.commit()
    con.close()
    return path


@pytest.fixture(scope="module")
def undecodable(tmp_path_factory, target_url):
    base = tmp_path_factory.mktemp("undecodable")
    sources = {"u": build(base / "u.db")}
    work = base / "work"
    out = {"sources": sources, "work": work, "url": target_url}
    out["assess"] = steps.assess(sources, work)
    out["schema"] = steps.schema(sources, target_url, work)
    out["run"] = steps.run(sources, target_url, work, workers=2)
    out["validate"] = steps.validate(sources, target_url, work, workers=2)
    return out


def test_assess_samples_what_is_not_utf8_instead_of_failing(undecodable):
    rep = undecodable["assess"]
    tables = {t["name"]: t for t in rep.sources[0]["tables"]}
    samples = [s for m in tables["notes"]["misfits"] for s in m["samples"]]
    assert any(s["key"] == 3 and "\ufffd" in s["value"] for s in samples), samples
    kv = [s for m in tables["kv"]["misfits"] for s in m["samples"]]
    assert {"key": "a", "type": "blob", "value": "x'00FF'"} in kv, kv


def test_good_values_arrive_exactly_and_bad_ones_are_rejected_with_their_reason(undecodable):
    run = undecodable["run"]
    with pg(undecodable["url"]) as conn:
        rows = dict(conn.execute("SELECT id, note FROM u.notes ORDER BY id").fetchall())
    assert rows[1] == "text" and rows[2] == "3.5", rows  # never the bytes' repr "b'3.5'"
    assert 3 not in rows and 4 not in rows
    rejects = [json.loads(line) for line in Path(run.rejects_file).read_text().splitlines()]
    reasons = {r["table"]: [] for r in rejects}
    for r in rejects:
        reasons[r["table"]].append(r["reason"])
    assert len(reasons["notes"]) == 2 and all("invalid UTF-8" in r for r in reasons["notes"]), reasons


def test_validate_finishes_and_counts_only_the_rejected_rows_as_loss(undecodable):
    rep = undecodable["validate"]
    text = "\n".join(rep.problems)
    assert "internal error" not in text
    assert "u.notes: 2 rows were rejected by the run" in text, text
    assert "differ" not in text, text


def test_a_source_repaired_between_runs_is_named_not_silently_resumed(tmp_path):
    """The repair a rejected row invites changes the file: a second run into the same target
    would not read the chunks loaded before, so it must say the source changed (and every
    later run too); a fresh target (as after a rollback) takes the repaired file whole."""
    name = create_database("repaired")
    url = f"postgresql://root@127.0.0.1:5432/{name}"
    try:
        sources = {"u": build(tmp_path / "u.db")}
        work = tmp_path / "work"
        first = steps.run(sources, url, work, workers=2)
        assert not any("changed since" in p for p in first.problems), first.problems
        con = sqlite3.connect(sources["u"])
        con.execute("UPDATE notes SET title = 'repaired' WHERE id = 3")
        con.commit()
        con.close()
        for _ in range(2):
            again = steps.run(sources, url, work, workers=2)
            assert any(p.startswith(f"{sources['u']} changed since an earlier run loaded part of it")
                       for p in again.problems), again.problems
    finally:
        drop_database(name)
    # Into a fresh target (as after a rollback) the repaired file loads whole, with no warning.
    name = create_database("repaired")
    url = f"postgresql://root@127.0.0.1:5432/{name}"
    try:
        fresh = steps.run(sources, url, work, workers=2)
        assert not any("changed since" in p for p in fresh.problems), fresh.problems
        with pg(url) as conn:
            assert conn.execute("SELECT title FROM u.notes WHERE id = 3").fetchone() == ("repaired",)
    finally:
        drop_database(name)
