"""Epoch numbers in date/time columns and NUL characters in text: decisions a lead reviews in
unified_schema.sql, not rejects. Every row loads as the right value and validates; an override
written in the file is what the run does."""
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from migration import decisions, steps
from migration.errors import InputError

from .conftest import create_database, drop_database, pg

S0, MS0, US0 = 1_700_000_000, 1_700_000_000_123, 1_700_000_000_123_456
ROWS = 300


def _utc(seconds=0, ms=0, us=0):
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds, milliseconds=ms, microseconds=us)


def build_epochs(path: Path) -> Path:
    """users with epoch seconds, milliseconds and microseconds in DATETIME/TIMESTAMP columns, a
    column mixing ISO text with epoch seconds, text with NUL characters, and orders that
    reference every user (each rejected user would leave dangling references)."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at DATETIME NOT NULL,
                            seen_ms TIMESTAMP, precise_us DATETIME, mixed DATETIME, note TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), placed DATETIME);
    """)
    rows = []
    for i in range(1, ROWS + 1):
        mixed = f"2024-01-{1 + i % 28:02d} 10:00:00" if i % 2 else S0 + i
        note = f"note {i}\x00with a NUL" if i % 10 == 0 else f"note {i}"
        rows.append((i, f"user {i}", S0 + i * 3600, MS0 + i, US0 + i * 7, mixed, note))
    con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?,?)", rows)
    con.execute("UPDATE users SET seen_ms = NULL WHERE id = 5")
    con.executemany("INSERT INTO orders VALUES (?,?,?)", [(i, i, S0 + i) for i in range(1, ROWS + 1)])
    con.commit()
    con.close()
    return path


@pytest.fixture
def setup(tmp_path):
    name = create_database("decisions")
    url = f"postgresql://root@127.0.0.1:5432/{name}"
    sources = {"app": build_epochs(tmp_path / "app.db")}
    work = tmp_path / "work"
    schema = steps.schema(sources, url, work)
    yield {"sources": sources, "url": url, "work": work, "schema": schema}
    drop_database(name)


def _column_line(sql: str, column: str) -> str:
    return next(line for line in sql.splitlines() if re.match(rf"\s+{column} ", line))


def test_the_schema_writes_each_decision_beside_its_column(setup):
    sql = Path(setup["schema"].schema_sql).read_text()
    for column, choice in (("created_at", "s"), ("seen_ms", "ms"), ("precise_us", "us"), ("mixed", "s"),
                           ("placed", "s")):
        line = _column_line(sql, column)
        assert "timestamp with time zone" in line and f"-- decision epoch={choice}:" in line, line
    assert "ISO text without an offset is taken as UTC" in _column_line(sql, "mixed")
    note = _column_line(sql, "note")
    assert note.split("--")[0].strip().startswith("note text") and "-- decision nul=strip: 30 values" in note
    # the same sources give the same file, so an approval of it stands
    again = steps.schema(setup["sources"], setup["url"], setup["work"])
    assert again.schema_sha256 == setup["schema"].schema_sha256


def test_epoch_columns_load_every_row_as_the_right_time_and_validate(setup):
    rep = steps.run(setup["sources"], setup["url"], setup["work"], workers=2)
    assert rep.ok, rep.problems
    assert rep.totals["loaded"] == 2 * ROWS and rep.totals["rejected"] == 0
    with pg(setup["url"]) as conn:
        got = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, created_at, seen_ms, precise_us, mixed, note FROM app.users ORDER BY id")}
        assert conn.execute("SELECT count(*) FROM app.orders o JOIN app.users u ON u.id = o.user_id").fetchone()[0] == ROWS
    assert len(got) == ROWS
    for i in (1, 2, 5, 10, ROWS):
        created, seen, precise, mixed, note = got[i]
        assert created == _utc(S0 + i * 3600)
        assert seen == (None if i == 5 else _utc(ms=MS0 + i))
        assert precise == _utc(us=US0 + i * 7)
        assert mixed == (datetime(2024, 1, 1 + i % 28, 10, tzinfo=timezone.utc) if i % 2 else _utc(S0 + i))
        assert note == (f"note {i}with a NUL" if i % 10 == 0 else f"note {i}")
    converted = {c["column"]: (c["decision"], c["values"]) for c in rep.converted}
    assert converted["created_at"] == ("epoch=s", ROWS) and converted["seen_ms"] == ("epoch=ms", ROWS - 1)
    assert converted["mixed"] == ("epoch=s", ROWS // 2) and converted["note"] == ("nul=strip", ROWS // 10)

    val = steps.validate(setup["sources"], setup["url"], setup["work"], workers=2)
    assert val.ok, val.problems[:5]
    assert val.totals["differences"] == 0 and val.totals["tables_matching"] == 2
    assert {c["column"]: c["values"] for c in val.converted}["precise_us"] == ROWS
    assert any("converted as decided: app.users.note nul=strip: 30 values" in line for line in val.summary_lines()) \
        or any("nul=strip" in line for line in val.details())


def test_validate_still_finds_a_wrong_converted_value(setup):
    steps.run(setup["sources"], setup["url"], setup["work"], workers=1)
    with pg(setup["url"]) as conn:
        conn.execute("UPDATE app.users SET seen_ms = seen_ms + interval '1 millisecond' WHERE id = 7")
        conn.execute("UPDATE app.users SET note = 'note 20with a nul' WHERE id = 20")
    val = steps.validate(setup["sources"], setup["url"], setup["work"], workers=1)
    keys = {(d["key"], tuple(d["columns"])) for d in val.differences}
    assert ("id=7", ("seen_ms",)) in keys and ("id=20", ("note",)) in keys and not val.ok


def _edit(work: Path, column: str, old: str, new: str) -> None:
    path = work / "unified_schema.sql"
    text = path.read_text()
    line = _column_line(text, column)
    assert old in line, line
    path.write_text(text.replace(line, line.replace(old, new)))


def test_an_override_in_the_file_is_honoured(setup):
    work = setup["work"]
    _edit(work, "note", "decision nul=strip", "decision nul=reject")
    _edit(work, "precise_us", "decision epoch=us", "decision epoch=reject")
    rep = steps.run(setup["sources"], setup["url"], work, workers=2)
    users = next(t for t in rep.tables if t["table"] == "users")
    # every 10th row has a NUL, and every row's precise_us is a number: all rejected now
    assert users["loaded"] == 0 and users["rejected"] == ROWS
    reasons = " ".join(users["reject_examples"])
    assert "not guessed" in reasons or "NUL" in reasons
    assert not rep.ok


def test_nul_kept_as_bytes_when_the_reviewer_chooses_bytea(setup):
    work = setup["work"]
    _edit(work, "note", "note text ", "note bytea ")
    _edit(work, "note", "decision nul=strip", "decision nul=bytea")
    rep = steps.run(setup["sources"], setup["url"], work, workers=2)
    assert rep.ok, rep.problems
    with pg(setup["url"]) as conn:
        assert bytes(conn.execute("SELECT note FROM app.users WHERE id = 10").fetchone()[0]) == b"note 10\x00with a NUL"
    val = steps.validate(setup["sources"], setup["url"], work, workers=2)
    assert val.ok, val.problems[:5]


def test_epoch_unit_override_reads_the_numbers_in_that_unit(setup):
    work = setup["work"]
    _edit(work, "created_at", "decision epoch=s", "decision epoch=auto")
    _edit(work, "placed", "decision epoch=s", "decision epoch=ms")
    rep = steps.run(setup["sources"], setup["url"], work, workers=1)
    assert rep.ok, rep.problems
    with pg(setup["url"]) as conn:
        assert conn.execute("SELECT placed FROM app.orders WHERE id = 3").fetchone()[0] == _utc(ms=S0 + 3)
        assert conn.execute("SELECT created_at FROM app.users WHERE id = 3").fetchone()[0] == _utc(S0 + 3 * 3600)
    assert steps.validate(setup["sources"], setup["url"], work, workers=1).ok


def test_an_unknown_or_misplaced_decision_is_refused_naming_the_column(setup):
    work = setup["work"]
    _edit(work, "seen_ms", "decision epoch=ms", "decision epoch=weeks")
    with pytest.raises(InputError, match=r"app\.users\.seen_ms: epoch=weeks is not one of s, ms, us"):
        steps.run(setup["sources"], setup["url"], work, workers=1)
    _edit(work, "seen_ms", "decision epoch=weeks", "decision epoch=ms")
    _edit(work, "note", "decision nul=strip", "decision nul=bytea")
    with pytest.raises(InputError, match=r"app\.users\.note: nul=bytea keeps the bytes only in a bytea column"):
        steps.run(setup["sources"], setup["url"], work, workers=1)


def test_numbers_outside_every_epoch_range_are_not_guessed():
    assert decisions.epoch_unit(1_700_000_000, "auto") == "s"
    assert decisions.epoch_unit(1_700_000_000_000, "auto") == "ms"
    assert decisions.epoch_unit(1_700_000_000_000_000, "auto") == "us"
    assert decisions.epoch_unit(42, "auto") is None
    assert decisions.epoch_unit(42, "s") == "s"
