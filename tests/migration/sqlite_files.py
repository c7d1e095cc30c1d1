"""SQLite files built to be hard to migrate, and a big one for kill-and-resume."""
from __future__ import annotations

import sqlite3
from pathlib import Path

HARD_SCHEMA = """
CREATE TABLE "order" (
    "select" INTEGER PRIMARY KEY AUTOINCREMENT,
    "group by" TEXT NOT NULL,
    "Ünïcödé name" TEXT,
    "user" TEXT CHECK ("user" <> ''),
    amount DECIMAL(10,2),
    score REAL,
    is_paid BOOLEAN DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    doc JSON
);
CREATE INDEX "order by user" ON "order" ("user") WHERE "user" IS NOT NULL;
CREATE INDEX order_lower_group ON "order" (lower("group by"));
CREATE TABLE "my table" (id INTEGER PRIMARY KEY, note TEXT, Mixed INTEGER, ratio REAL, happened DATETIME, born DATE);
CREATE TABLE pairs (code TEXT NOT NULL, seq INTEGER NOT NULL, label TEXT, PRIMARY KEY (code, seq)) WITHOUT ROWID;
CREATE TABLE shapes (id INTEGER PRIMARY KEY, w INTEGER, h INTEGER,
    area INTEGER GENERATED ALWAYS AS (w * h) VIRTUAL,
    perimeter INTEGER GENERATED ALWAYS AS (2 * (w + h)) STORED);
CREATE TABLE empty_one (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data BLOB);
CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id), name TEXT);
CREATE TABLE things (id VARCHAR(36) PRIMARY KEY, title TEXT);
CREATE TABLE thing_tags (id INTEGER PRIMARY KEY, thing_id VARCHAR(36) REFERENCES things(id), tag TEXT);
CREATE TABLE floats (id INTEGER PRIMARY KEY, x REAL);
CREATE VIEW paid_orders AS SELECT "select", "group by", amount FROM "order" WHERE is_paid = 1;
CREATE TRIGGER order_touch AFTER UPDATE ON "order" BEGIN UPDATE "order" SET created_at = CURRENT_TIMESTAMP WHERE "select" = NEW."select"; END;
CREATE VIRTUAL TABLE notes_fts USING fts5(body);
"""

WIDE_COLUMNS = 150

# rows the load must reject, with the word each reason must contain (row 6's NUL character is
# stripped under the schema's decision nul=strip, not rejected)
EXPECTED_REJECTS = {
    ("my table", 3): "integer",      # text in an INTEGER column
    ("my table", 4): "floating",     # text in a REAL column
    ("my table", 5): "valid",        # 2024-02-30 is no date
    ("my table", 7): "ISO",          # 'now' is not a timestamp
    ("my table", 8): "UTF-8",        # invalid UTF-8
}


def build_hard(path: Path) -> Path:
    """A file with odd names, mixed types, WITHOUT ROWID, generated columns, views, triggers,
    an FTS table, empty tables, big blobs, dangling references and mixed UUID spellings."""
    con = sqlite3.connect(path)
    con.executescript(HARD_SCHEMA)
    orders = [
        (1, "a\tb", "Zoë 🚀", "ann", 12.5, 0.1, 1, "2024-01-01 10:00:00", '{"b": 1, "a": [1, 2.50, "x\\ny"]}'),
        (2, "line\nbreak", "naïve", "bob", 7, 1e-7, 0, "2024-01-01T10:00:00.500000", '[]'),
        (3, "back\\slash \\N", None, None, 2.675, -3.25, "true", "2024-02-29", '{"k": null}'),
        (4, "plain", "日本語", "cid", None, None, 1, None, None),
    ]
    con.executemany('INSERT INTO "order" VALUES (?,?,?,?,?,?,?,?,?)', orders)
    con.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'order', 100 WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = 'order')")
    con.execute("UPDATE sqlite_sequence SET seq = 100 WHERE name = 'order'")
    con.executemany('INSERT INTO "my table" VALUES (?,?,?,?,?,?)', [
        (1, "fine", 5, 1.5, "2024-03-01 12:00:00", "2024-03-01"),
        (2, "also fine", -7, 2, "2024-03-02 00:00:00.25", None),
        (3, "text in integer", "abc", 1.0, None, None),
        (4, "text in real", 1, "n/a", None, None),
        (5, "bad date", 1, 1.0, "2024-02-30 10:00:00", None),
        (6, "nul \x00 byte", 1, 1.0, None, None),
        (7, "now", 1, 1.0, "now", None),
    ])
    con.execute("INSERT INTO \"my table\" VALUES (8, CAST(X'66ff6f' AS TEXT), 1, 1.0, NULL, NULL)")
    con.executemany("INSERT INTO pairs VALUES (?,?,?)", [("b", 2, "two"), ("a", 1, "one"), ("a", 2, "ä")])
    con.executemany("INSERT INTO shapes (id, w, h) VALUES (?,?,?)", [(1, 2, 3), (2, 10, 10), (3, None, 4)])
    con.executemany("INSERT INTO files VALUES (?,?,?)",
                    [(1, "big", bytes(range(256)) * 12000), (2, "empty", b""), (3, "none", None)])
    con.executemany("INSERT INTO parents VALUES (?,?)", [(1, "p1"), (2, "p2")])
    con.executemany("INSERT INTO children VALUES (?,?,?)", [(1, 1, "ok"), (2, 2, "ok"), (3, 99, "dangling"), (4, None, "none")])
    con.executemany("INSERT INTO things VALUES (?,?)", [
        ("0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b", "hyphens"),
        ("1A2B3C4D5E6F47808192A3B4C5D6E7F8", "upper, no hyphens"),
        ("c0519b2c37744ebba5d6eba33de9a43d", "no hyphens")])
    con.executemany("INSERT INTO thing_tags VALUES (?,?,?)", [
        (1, "0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b", "t1"), (2, "1A2B3C4D5E6F47808192A3B4C5D6E7F8", "t2"),
        (3, None, "t3")])
    con.executemany("INSERT INTO floats VALUES (?,?)", [
        (1, 0.1), (2, 1e300), (3, 5e-324), (4, -1.7976931348623157e308), (5, 123456789.123456789), (6, 1 / 3)])
    con.execute("INSERT INTO notes_fts (body) VALUES ('full text')")
    # wider than SQLite's 127 function arguments: the COPY and checksum lines are split
    con.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, " +
                ", ".join(f"c{i} {'INTEGER' if i % 2 else 'TEXT'}" for i in range(WIDE_COLUMNS)) + ")")
    con.executemany(f"INSERT INTO wide VALUES ({', '.join('?' * (WIDE_COLUMNS + 1))})",
                    [[r] + [(r * i if i % 2 else f"t{r}-{i}") for i in range(WIDE_COLUMNS)] for r in range(1, 4)])
    con.commit()
    con.close()
    return path


def build_big(path: Path, rows: int = 400_000) -> Path:
    """A plain file large enough that a run takes a few seconds (for kill-and-resume)."""
    con = sqlite3.connect(path)
    con.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, created_at DATETIME, balance REAL);
        CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id), kind TEXT,
                             at DATETIME, value REAL, payload TEXT);
    """)
    con.executemany("INSERT INTO accounts VALUES (?,?,?,?)",
                    ((i, f"u{i}@example.com", f"2024-01-{1 + i % 28:02d} 10:{i % 60:02d}:00", i * 0.25)
                     for i in range(1, 5001)))
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)",
                    ((i, 1 + i % 5000, ("view", "buy", "click")[i % 3], f"2024-02-{1 + i % 28:02d} 11:{i % 60:02d}:{i % 59:02d}",
                      i / 7, "event payload number %d with some words in it" % i) for i in range(1, rows + 1)))
    con.commit()
    con.close()
    return path


ODD_VALUES = {
    # one list per column, cycled through the rows: every spelling the profile tells apart
    "ts": ["2024-01-01 10:00:00", "2024-01-01T10:00:00", "2024-01-01 10:00:00.123456", "2024-01-01 10:00:00.5",
           "2024-01-01 10:00:00Z", "2024-01-01T10:00:00+02:00", "2024-01-01 10:00:00.123-05:00", "2024-01-01",
           "10:30", "10:30:00.5", "garbage", 1_700_000_000, 1_700_000_000_123, 1_700_000_000_123_456, 1.7e9, None,
           b"\x00\xff", "2024-01-01 10:00:00.1234567", "2024-01-01 10:00:0x", "2024-01-01 10:00:00 ",
           "2024-01-01 00:00:00", "2024-01-01 10:00:00.12a456", "nul\x00"],
    "d": ["2024-01-01", "2024-01-01 00:00:00", "2024-01-01 10:00:00", None, 20240101],
    "tm": ["10:30:00", "10:30", "25:99", "x", None],
    "u": ["0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6b", "c0519b2c37744ebba5d6eba33de9a43d", "not-a-uuid",
          "0B7F2C1E-8A4D-4E5F-9A6B-1C2D3E4F5A6B", None, "0b7f2c1e-8a4d-4e5f-9a6b-1c2d3e4f5a6x"],
    "g": [1, 2, "c0519b2c37744ebba5d6eba33de9a43d"],
    "b": [0, 1, "true", " Yes ", 2, 1.0, None, "maybe"],
    "b2": [0, 1, None],
    "j": ['{"a": 1}', "[1]", "3", "nope", 5, None, 2.5],
    "tx": ["a\tb", "a\\b", "plain", "nul\x00x", b"\\", 12, 1.5, None, '{"k": 1}', "[2]", "line\nbreak", "cr\r"],
    "vc": ["abc", "abcdef", 123456, None],
    "r": [0.1, 1e300, 5e-324, 0.0, -0.0, 1 / 3, 2, None, "text", 123456789.123456789, 1e-11],
    "i": [1, -5, 2.5, 3.0, "x", 9_223_372_036_854_775_807, None, b"\x01", -9_223_372_036_854_775_808],
    "n": [1, 2.5, "abc", None, 1e20],
    "nodecl": [1, 2.5, "t", None, b"\x02"],
    "must": ["a", "b\\c", "d"],
}
ODD_SCHEMA = """CREATE TABLE odd (id INTEGER PRIMARY KEY, ts DATETIME, d DATE, tm TIME, u UUID, g GUID, b BOOLEAN,
    b2 BOOLEAN, j JSON, tx TEXT, vc VARCHAR(5), r REAL, i INTEGER, n DECIMAL(10,2), nodecl, must TEXT NOT NULL)"""


def build_odd_values(path: Path, rows: int = 600) -> Path:
    """One table whose columns cycle through odd spellings (`ODD_VALUES`) of their declared
    types: offsets, fractions, epoch numbers, NULs, escapes, UUID spellings, boolean words,
    inexact floats, blobs in text columns. With enough rows it is profiled in key ranges."""
    con = sqlite3.connect(path)
    con.execute(ODD_SCHEMA)
    names = list(ODD_VALUES)
    con.executemany(f"INSERT INTO odd VALUES (?, {', '.join('?' * len(names))})",
                    ([i] + [ODD_VALUES[n][(i + k) % len(ODD_VALUES[n])] for k, n in enumerate(names)]
                     for i in range(1, rows + 1)))
    con.commit()
    con.close()
    return path
