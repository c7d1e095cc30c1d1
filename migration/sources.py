"""Opening the SQLite sources safely, and naming them in every error.

Sources are opened read-only (``mode=ro``) with a busy timeout, so the engine never writes to
a file it migrates and waits a bounded time for a writer to finish. Every failure becomes a
`SourceError` whose message names the file and says what is wrong with it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

from .errors import InputError, SourceError
from .safe_files import UnsafeFile, open_regular

SQLITE_MAGIC = b"SQLite format 3\x00"
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,50}$")


def parse_source_args(values: list[str]) -> dict[str, Path]:
    """Turn ``NAME=PATH`` (or bare ``PATH``) arguments into an ordered {name: path} mapping."""
    sources: dict[str, Path] = {}
    for value in values:
        if "=" in value and not Path(value).exists():
            name, _, path = value.partition("=")
        else:
            path = value
            name = Path(value).stem
        name = name.strip()
        if not NAME_RE.match(name):
            raise InputError(f"--source {value!r}: the name must be letters, digits, '_', '-' or '.' "
                             f"(it becomes the PostgreSQL schema name)")
        if name in sources:
            raise InputError(f"--source {value!r}: the name {name!r} is given twice")
        if not path:
            raise InputError(f"--source {value!r}: no path after '='")
        sources[name] = Path(path).expanduser()
    return sources


def check_source_file(path: Path) -> None:
    """Raise `SourceError` unless `path` is a readable regular file with a SQLite header.

    The file is opened without blocking and its kind taken from the open descriptor, so a FIFO
    or a device given as a source is refused at once instead of hanging the step.
    """
    path = Path(path)
    try:
        fd = open_regular(path, "source")
    except UnsafeFile as exc:
        raise SourceError(str(exc).removeprefix("source ")) from None
    try:
        header = os.read(fd, 100)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(header) == 0:
        raise SourceError(f"{path}: is empty (0 bytes), not a SQLite database")
    if not header.startswith(SQLITE_MAGIC):
        raise SourceError(f"{path}: is not a SQLite database (no 'SQLite format 3' header)")
    if len(header) < 100:
        raise SourceError(f"{path}: is truncated (shorter than a SQLite header)")


def describe_sqlite_error(path: Path, exc: BaseException) -> SourceError:
    """Turn a sqlite3 exception into a `SourceError` that says what is wrong with which file."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        why = "is locked by another connection (a writer holds an exclusive lock); try again when it is released"
    elif "not a database" in low:
        why = "is not a SQLite database, or is encrypted"
    elif "malformed" in low or "corrupt" in low:
        why = f"is corrupt ({text})"
    elif "unable to open" in low:
        why = f"cannot be opened ({text})"
    else:
        why = f"SQLite error: {text}"
    return SourceError(f"{path}: {why}")


def _uri(path: Path, extra: str = "") -> str:
    return f"file:{quote(str(Path(path).resolve()))}?mode=ro{extra}"


def open_source(path: Path, busy_timeout: float = 5.0, check: bool = True) -> sqlite3.Connection:
    """Open a SQLite source read-only; raise `SourceError` naming the file on any failure."""
    path = Path(path)
    if check:
        check_source_file(path)
    try:
        con = sqlite3.connect(_uri(path), uri=True, timeout=busy_timeout, check_same_thread=False)
    except sqlite3.Error as exc:
        raise describe_sqlite_error(path, exc) from None
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        con.close()
        # A WAL database in a read-only directory cannot create its -shm file; reading it as
        # immutable is then the only way, and is safe only because nobody can write there either.
        if "unable to open" in str(exc).lower() and not os.access(path.parent, os.W_OK):
            try:
                con = sqlite3.connect(_uri(path, "&immutable=1"), uri=True, timeout=busy_timeout,
                                      check_same_thread=False)
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return con
            except sqlite3.Error as exc2:
                raise describe_sqlite_error(path, exc2) from None
        raise describe_sqlite_error(path, exc) from None
    except sqlite3.Error as exc:
        con.close()
        raise describe_sqlite_error(path, exc) from None
    return con


def file_identity(path: Path) -> dict:
    """Size, mtime and SQLite change counter: cheap evidence that a file did not change."""
    path = Path(path)
    st = path.stat()
    with open(path, "rb") as fh:
        header = fh.read(100)
    counter = int.from_bytes(header[24:28], "big") if len(header) >= 28 else None
    wal = path.with_name(path.name + "-wal")
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "change_counter": counter,
            "wal_size": wal.stat().st_size if wal.exists() else 0}


def schema_sha256(path: Path, busy_timeout: float = 5.0) -> str:
    """The sha256 of a source's schema: every table, index, view and trigger as SQLite stores
    its CREATE statement (so tables, columns, declared types, keys and indexes), never its rows.
    A plan is bound to this, so new rows in a live source do not invalidate a reviewed schema."""
    con = open_source(Path(path), busy_timeout)
    try:
        rows = con.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                           "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name").fetchall()
    finally:
        con.close()
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()
