"""What the data in each column actually looks like, from one scan per table.

SQLite stores any value in any column, so the declared type is a hint. The profile counts,
for every column, the storage classes present and the shapes that matter to PostgreSQL
(ISO timestamps, UUID spellings, JSON documents, boolean spellings, longest text, NUL
characters). Type choices (`typemap`) and the "values that do not fit" of the assessment
are read from it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .catalog import Table, qi
from .decisions import WINDOWS
from .fastpath import DATE10, TS19, needs_escape

D = "[0-9]"
DATE_GLOB = f"{D}{D}{D}{D}-{D}{D}-{D}{D}"
TS_GLOB = f"{DATE_GLOB}[ T]{D}{D}:{D}{D}*"
TIME_GLOB = f"{D}{D}:{D}{D}*"
HEX = "[0-9a-fA-F]"
UUID36_GLOB = f"{HEX * 8}-{HEX * 4}-{HEX * 4}-{HEX * 4}-{HEX * 12}"
UUID32_GLOB = HEX * 32
BOOL_WORDS = ("true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0")
OFFSET_GLOB = "*[Zz+-]*"
TS_FRACTION_GLOB = f"{TS19}.{D}*"  # the loader's guard for a timestamp with a fraction (fastpath.copy_guard)


def is_datetime_type(declared: str) -> bool:
    t = declared.upper()
    return "DATE" in t or "TIME" in t


@dataclass
class ColumnProfile:
    name: str
    nulls: int = 0
    ints: int = 0
    reals: int = 0
    texts: int = 0
    blobs: int = 0
    integral_reals: int = 0
    max_len: int = 0
    with_nul: int = 0
    iso_dates: int = 0
    iso_timestamps: int = 0
    with_offset: int = 0
    nonzero_time: int = 0
    times: int = 0
    uuids: int = 0
    uuid_spellings: int = 0  # distinct spellings: hyphenated and/or plain
    json_docs: int = 0
    json_values: int = 0
    boolish: int = 0
    min_int: Optional[int] = None
    max_int: Optional[int] = None
    # numbers in a date/time-declared column inside each unit's epoch range (decisions.WINDOWS)
    epoch_s: int = 0
    epoch_ms: int = 0
    epoch_us: int = 0
    # what the census reads (census.derive), counted in the same scan
    # (None: not counted for a column of this declared type)
    bool01: Optional[int] = None  # values equal to 0 or 1 (BOOL-declared columns)
    ts_guard: Optional[int] = None  # texts the loader's timestamp guard passes (date/time-declared columns)
    ts19: Optional[int] = None  # texts spelled 'YYYY-MM-DD HH:MM:SS'
    ts26: Optional[int] = None  # texts spelled 'YYYY-MM-DD HH:MM:SS.ffffff'
    escapes: Optional[int] = None  # texts and blobs holding a character COPY escapes (text-like, JSON)
    inexact_floats: Optional[int] = None  # reals SQLite's 17-digit printf does not give back (REAL columns)

    @property
    def epochs(self) -> int:
        return self.epoch_s + self.epoch_ms + self.epoch_us

    @property
    def non_null(self) -> int:
        return self.ints + self.reals + self.texts + self.blobs


@dataclass
class TableProfile:
    table: str
    rows: int = 0
    columns: dict = field(default_factory=dict)  # name -> ColumnProfile

    def to_dict(self) -> dict:
        return {"table": self.table, "rows": self.rows,
                "columns": {k: asdict(v) for k, v in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "TableProfile":
        return cls(table=data["table"], rows=data["rows"],
                   columns={k: ColumnProfile(**v) for k, v in data["columns"].items()})


def json_available(con: sqlite3.Connection) -> bool:
    """Whether this SQLite has the JSON functions (built in since 3.38)."""
    try:
        con.execute("SELECT json_valid('{}')").fetchone()
        return True
    except sqlite3.OperationalError:
        return False


# The cost of an aggregate is mostly the function calls it makes per value, so counts about
# one column share one expression where they can: a row adds PACK**k for each count k it
# belongs to, and the sum holds up to three counts. A field cannot carry into the next while a
# key range holds fewer than PACK rows; longer ranges count each field separately.
PACK = 1 << 21
PACK_ROWS = PACK // 2  # margin for rows written between the range's cut and its scan


def _when(*conds: str, then: str = "1") -> str:
    """SQL that is `then` when every condition holds, else NULL. SQLite evaluates both sides of
    AND in a value, but stops at the first CASE branch that fails: the costly tests come last."""
    out = then
    for cond in reversed(conds):
        out = f"CASE WHEN {cond} THEN {out} END"
    return out


def _bit(cond: str, k: int) -> str:
    """PACK**k when `cond` holds, else 0 (one field of a packed count)."""
    return f"CASE WHEN {cond} THEN {PACK ** k} ELSE 0 END"


def _column_aggregates(col, has_json: bool) -> list[tuple[str, str]]:
    """(key, SQL) of everything counted about one column, in one scan.

    A plain key's SQL is an aggregate; a key "a|b|c" names a packed count and its SQL is the
    per-row value whose sum packs the counts (`PACK`). Each count is asked only of the storage
    class it is about, so a column pays for a shape test only on values that can have it.
    Counts the plan reads only when the column holds text are dropped afterwards when it holds
    none (`finish_column`), so the profile means what it meant when they were a second scan
    asked only of columns holding text.
    """
    c = qi(col.name)
    t = f"typeof({c})"
    n = f"length({c})"
    declared = col.declared_type.upper()
    dt = is_datetime_type(declared)
    text_like = col.affinity in ("TEXT", "BLOB")

    def glob(pattern: str, expr: str = c) -> str:
        return f"{expr} GLOB '{pattern}'"

    def count(*conds: str) -> str:
        return f"count({_when(*conds)})"

    aggs = [("ints|reals|texts", f"CASE {t} WHEN 'integer' THEN 1 WHEN 'real' THEN {PACK} "
                                 f"WHEN 'text' THEN {PACK * PACK} END"),
            ("blobs", f"count({c})")]  # the non-null count until absorb subtracts the others
    if text_like or dt:
        nul = f"instr({c}, char(0))"
        if text_like or "JSON" in declared:
            # with_nul, the values COPY's text format escapes (the census's "plain") and the
            # JSON documents among the texts, in one sum: one test of the storage class for all
            tests = f"{_bit(nul, 0)} + {_bit(needs_escape(c), 1)}"
            if has_json:
                # A text json_quote() only wraps in quotes holds no control character (NUL, tab,
                # newlines), backslash or quote: one pass over it answers both tests for most
                # texts. JSON documents (they start with { or [) hold quotes: they skip it.
                tests = (f"CASE WHEN unicode({c}) IN (91, 123) THEN {tests} + {_bit(f'json_valid({c})', 2)} "
                         f"WHEN length(json_quote({c})) = length({c}) + 2 THEN 0 ELSE {tests} END")
            aggs += [("with_nul|escapes" + ("|json_docs" if has_json else ""),
                      f"CASE {t} WHEN 'text' THEN {tests} WHEN 'blob' THEN {_bit(needs_escape(c), 1)} END")]
        # (a date/time column's with_nul is counted with its spellings below)
        aggs.append(("max_len", f"max(CASE {t} WHEN 'text' THEN {n} END)"))
    elif "JSON" in declared:
        aggs.append(("escapes", count(f"{t} IN ('text', 'blob')", needs_escape(c))))
    if col.affinity in ("INTEGER", "NUMERIC", "BLOB"):
        aggs += [("min_int", f"min(CASE {t} WHEN 'integer' THEN {c} END)"),
                 ("max_int", f"max(CASE {t} WHEN 'integer' THEN {c} END)"),
                 ("integral_reals", count(f"{t} = 'real'", f"{c} = CAST({c} AS INTEGER)"))]
    if dt:
        # the units' ranges do not overlap: one test finds a number's unit
        units = " ".join(f"WHEN {c} BETWEEN {lo} AND {hi} THEN {PACK ** k}" for k, (lo, hi) in enumerate(WINDOWS.values()))
        aggs.append(("|".join(f"epoch_{u}" for u in WINDOWS), f"CASE WHEN {t} IN ('integer', 'real') THEN CASE {units} END END"))
        space11 = f"substr({c}, 11, 1) = ' '"
        # a Z or a sign after the seconds marks an offset (the parser decides the details); a
        # value the loader's guard passes (fastpath.copy_guard; ts_guard, for the census) has
        # only digits, colons and a dot there, so the offset test is asked of the others only
        offset = f"CASE WHEN {n} > 19 THEN {_bit(glob(OFFSET_GLOB, f'substr({c}, 17)'), 2)} ELSE 0 END"
        # A value the guard passes is an ISO timestamp too, so one GLOB of the exact spelling
        # for its length (TS19, or TS_FRACTION_GLOB with only digits after the dot) answers
        # both; only the other values are asked TS_GLOB and the offset.
        other = f"{_bit(glob(TS_GLOB), 0)} + {offset}"
        exact = " ".join(f"WHEN {k} THEN CASE WHEN {glob(TS19 + ('.' + D * (k - 20) if k > 19 else ''))} "
                         f"THEN {1 + PACK} ELSE {other} END" for k in (19, 21, 22, 23, 24, 25, 26))
        nonzero = _bit(f"rtrim(substr({c}, 12), '0:. ') != ''", 2)
        aggs += [
            # a timestamp is at least 16 long, a date 10 (it passes the guard as it is)
            ("iso_timestamps|ts_guard|with_offset",
             f"CASE {t} WHEN 'text' THEN CASE WHEN {n} = 10 THEN {_bit(glob(DATE10), 1)} WHEN {n} <= 15 THEN 0 "
             f"ELSE CASE {n} {exact} ELSE {other} END END END"),
            # a date is 10 long, a time of day at most 15; a time part is looked at after 10
            ("iso_dates|times|nonzero_time",
             f"CASE {t} WHEN 'text' THEN CASE WHEN {n} <= 15 THEN "
             f"(CASE WHEN {n} = 10 THEN {_bit(glob(DATE_GLOB), 0)} ELSE 0 END) + {_bit(glob(TIME_GLOB), 1)} "
             f"+ (CASE WHEN {n} > 10 THEN {nonzero} ELSE 0 END) ELSE {nonzero} END END"),
        ]
        # the two spellings the loader prints as they are (the census's ts19, ts26), and
        # texts with NUL where the text tests above did not count them
        spellings = f"CASE {n} WHEN 19 THEN {_bit(space11, 0)} WHEN 26 THEN {_bit(space11, 1)} ELSE 0 END"
        if text_like or "JSON" in declared:
            aggs.append(("ts19|ts26", f"CASE {t} WHEN 'text' THEN {spellings} END"))
        else:
            aggs.append(("ts19|ts26|with_nul", f"CASE {t} WHEN 'text' THEN {spellings} + {_bit(nul, 2)} END"))
    if text_like or "UUID" in declared or "GUID" in declared:
        # texts of each UUID length (the spellings present) and those spelled as a UUID
        aggs.append(("uuid36|uuids|uuid32", f"CASE {t} WHEN 'text' THEN CASE {n} WHEN 36 THEN 1 + {_bit(glob(UUID36_GLOB), 1)} "
                                            f"WHEN 32 THEN {PACK ** 2} + {_bit(glob(UUID32_GLOB), 1)} END END"))
    if has_json and (text_like or "JSON" in declared):
        if not (text_like or dt):  # otherwise counted with with_nul above
            aggs.append(("json_docs", count(f"{t} = 'text'", f"unicode({c}) IN (91, 123)", f"json_valid({c})")))
        if "JSON" in declared:
            aggs.append(("json_values", count(f"{t} IN ('text', 'integer', 'real')", f"json_valid({c})")))
    if "BOOL" in declared:
        words = ", ".join(f"'{w}'" for w in BOOL_WORDS)
        aggs.append(("bool01|boolish", f"CASE WHEN {c} IN (0, 1) THEN {1 + PACK} WHEN {t} = 'text' THEN "
                                       f"{_bit(f'lower(trim({c})) IN ({words})', 1)} END"))
    if col.affinity == "REAL":
        # reals whose 17-digit printf does not read back as the same double (the census's "float17")
        differs = _when(f"CAST(printf('%!.17g', {c}) AS REAL) != {c}")
        aggs.append(("inexact_floats", f"count(CASE {t} WHEN 'real' THEN CASE WHEN {c} = 0 THEN NULL "
                                       f"WHEN abs({c}) BETWEEN 1e-10 AND 1e17 THEN {differs} ELSE 1 END END)"))
    return aggs


def _run_aggregates(con, table: Table, exprs: list, where: str = "1", params: tuple = ()) -> list:
    # SQLite limits the number of result columns; very wide tables are scanned in slices.
    row = []
    step = 1500
    for k in range(0, len(exprs), step):
        row.extend(con.execute(f"SELECT {', '.join(exprs[k:k + step])} FROM {qi(table.name)} WHERE {where}",
                               params).fetchone())
    return row


def _rowid_aggregates(col) -> list[tuple[str, str]]:
    """What `_column_aggregates` counts of an INTEGER column, for the rowid's alias: its values
    are the rowids, integers and never NULL, so only their extremes need reading. SQLite
    computes an aggregate written twice in one query once, so count(*) here costs nothing."""
    c = qi(col.name)
    return [("ints", "count(*)"), ("blobs", "count(*)"), ("min_int", f"min({c})"), ("max_int", f"max({c})")]


def rowid_alias(con, table: Table) -> Optional[str]:
    """The column that is the table's rowid, as SQLite itself reads it (its query plan reads the
    rowid, not a stored value), or None. The catalog's answer is not enough: a column declared
    INTEGER PRIMARY KEY DESC, for one, is stored like any other."""
    if not table.rowid_alias or table.without_rowid:
        return None
    ops = {r[1] for r in con.execute(f"EXPLAIN SELECT {qi(table.rowid_alias)} FROM {qi(table.name)} NOT INDEXED")}
    return table.rowid_alias if "Rowid" in ops and "Column" not in ops else None


def profile_exprs(table: Table, has_json: bool, packed: bool = True, alias: Optional[str] = None) -> tuple[list, list]:
    """(layout [(column, key)] of the values a scan gives, SQL aggregates) of one scan of a table;
    it starts with count(*). Packed, a "a|b|c" key is one sum (see `unpack`); otherwise
    each of its counts is summed alone. `alias` names the rowid's alias column (`rowid_alias`)."""
    layout, exprs = [], ["count(*)"]
    for col in table.columns:
        aggregates = _rowid_aggregates(col) if col.name == alias else _column_aggregates(col, has_json)
        for key, sql in aggregates:
            if "|" not in key:
                layout.append((col.name, key))
                exprs.append(sql)
            elif packed:
                layout.append((col.name, key))
                exprs.append(f"sum({sql})")
            else:
                for k, part in enumerate(key.split("|")):
                    layout.append((col.name, part))
                    exprs.append(f"sum(({sql}) / {PACK ** k} % {PACK})")
    return layout, exprs


def unpack(layout: list, row: list) -> tuple[list, list]:
    """A scan's (layout, values) with every packed count split into its fields."""
    flat, values = [], [row[0] or 0]
    for (cname, key), value in zip(layout, row[1:]):
        if "|" not in key:
            flat.append((cname, key))
            values.append(value)
            continue
        value = int(value or 0)
        for part in key.split("|"):
            flat.append((cname, part))
            values.append(value % PACK)
            value //= PACK
    return flat, values


_MAXED = ("max_len", "max_int")


def combine(layout: list, rows: list) -> list:
    """Unpacked scans of several key ranges, as if of the whole table: counts add, min and max
    keep the extreme (NULL when a range had no value)."""
    keys = [("", "rows")] + layout
    out = []
    for k, (_, key) in enumerate(keys):
        values = [r[k] for r in rows if r[k] is not None]
        if key in _MAXED:
            out.append(max(values) if values else None)
        elif key == "min_int":
            out.append(min(values) if values else None)
        else:
            out.append(sum(values))
    return out


def absorb(prof: "TableProfile", layout: list, row: list) -> None:
    """Set an unpacked scan's results on the profile (after `combine`)."""
    prof.rows = row[0] or 0
    seen: dict = {name: {} for name in prof.columns}
    for (cname, key), value in zip(layout, row[1:]):
        seen[cname][key] = value if key in ("min_int", "max_int") else int(value or 0)
    for cname, values in seen.items():
        cp = prof.columns[cname]
        finish_column(cp, values)
        cp.blobs -= cp.ints + cp.reals + cp.texts
        cp.nulls = prof.rows - cp.non_null


def scan(con, table: Table, has_json: bool, where: str = "1", params: tuple = (), rows: Optional[int] = None) -> tuple:
    """(layout, values) of one scan of a table or of one key range of it (about `rows` rows)."""
    packed = (table.row_count if rows is None else rows) < PACK_ROWS
    layout, exprs = profile_exprs(table, has_json, packed, rowid_alias(con, table))
    return unpack(layout, _run_aggregates(con, table, exprs, where, params))


def finish_column(cp: ColumnProfile, values: dict) -> None:
    """Set one column's counts, keeping the profile's meaning: shapes of text are counted only
    for columns holding text, UUIDs only where no text is longer than a UUID can be spelled,
    and "boolish" without text is the count of 0 and 1."""
    texts = values.get("texts", 0)
    if not texts:
        for key in ("iso_dates", "iso_timestamps", "with_offset", "nonzero_time", "times", "uuids", "uuid36",
                    "uuid32", "json_docs", "json_values"):
            values.pop(key, None)
        if "bool01" in values:
            values["boolish"] = values["bool01"]
    if values.get("max_len", 0) > 38:
        values.pop("uuids", None)
        values.pop("uuid36", None)
        values.pop("uuid32", None)
    values["uuid_spellings"] = int(bool(values.pop("uuid36", 0))) + int(bool(values.pop("uuid32", 0)))
    if not values.get("reals"):
        values.pop("integral_reals", None)
    for key, value in values.items():
        setattr(cp, key, value)


def profile_table(con: sqlite3.Connection, table: Table, has_json: Optional[bool] = None) -> TableProfile:
    """Scan a table once and count what its columns hold."""
    if has_json is None:
        has_json = json_available(con)
    prof = TableProfile(table=table.name, columns={col.name: ColumnProfile(name=col.name) for col in table.columns})
    layout, values = scan(con, table, has_json)
    absorb(prof, layout, values)
    return prof


def profile_range(path: str, table: Table, has_json: bool, where: str, params: tuple, rows: int,
                  busy_timeout: float = 5.0) -> tuple:
    """The scan of one key range of a table, in a worker process (see `profile_tables`)."""
    from .sources import open_source

    con = open_source(path, busy_timeout=busy_timeout)
    try:
        return scan(con, table, has_json, where, params, rows)
    finally:
        con.close()


def misfits(col, cp: ColumnProfile) -> tuple[int, str]:
    """How many values of a column do not fit its declared type, and what they are."""
    declared = col.declared_type.upper()
    if "JSON" in declared:
        return cp.non_null - cp.json_values, "values that are not valid JSON"
    if "UUID" in declared or "GUID" in declared:
        return cp.non_null - cp.uuids, "values that are not UUIDs"
    if "BOOL" in declared:
        bad = cp.non_null - cp.boolish
        return bad, "values that are not booleans (0/1/true/false)"
    if is_datetime_type(declared):
        iso = cp.iso_timestamps + cp.iso_dates
        if "TIME" in declared and "DATE" not in declared and "STAMP" not in declared:
            iso = cp.times
        else:
            iso += cp.epochs  # converted under a reviewed decision (see decisions)
        bad = cp.non_null - iso
        return bad, "values that are neither ISO 8601 dates/times nor epoch numbers"
    aff = col.affinity
    if aff == "INTEGER":
        return cp.texts + cp.blobs + (cp.reals - cp.integral_reals), "text, blob or fractional values in an integer column"
    if aff in ("REAL", "NUMERIC"):
        return cp.texts + cp.blobs, "text or blob values in a numeric column"
    if aff == "TEXT":
        return cp.blobs + cp.with_nul, "blobs or text with NUL characters in a text column"
    return cp.with_nul, "text with NUL characters"


def misfit_samples(con: sqlite3.Connection, table: Table, col, limit: int = 3) -> list:
    """A few (rowid or key, value) examples of values that do not fit the declared type."""
    c = qi(col.name)
    t = f"typeof({c})"
    declared = col.declared_type.upper()
    if "JSON" in declared:
        cond = f"{c} IS NOT NULL AND NOT json_valid({c})"
    elif "UUID" in declared or "GUID" in declared:
        cond = (f"{c} IS NOT NULL AND NOT ({t}='text' AND ((length({c})=36 AND {c} GLOB '{UUID36_GLOB}') OR "
                f"(length({c})=32 AND {c} GLOB '{UUID32_GLOB}')))")
    elif "BOOL" in declared:
        cond = f"{c} IS NOT NULL AND NOT ({c} IN (0,1) OR ({t}='text' AND lower(trim({c})) IN ({', '.join(repr(w) for w in BOOL_WORDS)})))"
    elif is_datetime_type(declared):
        cond = f"{c} IS NOT NULL AND NOT ({t}='text' AND ({c} GLOB '{TS_GLOB}' OR {c} GLOB '{DATE_GLOB}' OR {c} GLOB '{TIME_GLOB}'))"
    elif col.affinity == "INTEGER":
        cond = f"{t} IN ('text','blob') OR ({t}='real' AND {c} != CAST({c} AS INTEGER))"
    elif col.affinity in ("REAL", "NUMERIC"):
        cond = f"{t} IN ('text','blob')"
    else:
        cond = f"{t}='blob' OR ({t}='text' AND instr({c}, char(0)) > 0)"
    key = qi(table.rowid_name) if table.rowid_name else ", ".join(qi(k) for k in table.pk) or "NULL"
    # A blob is shown as hex; text that is not UTF-8 (SQLite stores whatever it was given) is
    # shown with replacement characters instead of failing the report it samples for.
    value = (f"CASE WHEN {t}='blob' THEN 'x''' || hex(substr({c}, 1, 30)) || '''' "
             f"ELSE CAST(substr({c}, 1, 60) AS TEXT) END")
    out = []
    before = con.text_factory
    con.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        for row in con.execute(f"SELECT {key}, {t}, {value} FROM {qi(table.name)} WHERE {cond} LIMIT {limit}"):
            out.append({"key": row[0] if len(row) == 3 else list(row[:-2]), "type": row[-2], "value": row[-1]})
    finally:
        con.text_factory = before
    return out


PARALLEL_ROWS = 50_000  # files with fewer rows are profiled in this process
RANGE_ROWS = 25_000  # the shortest key range worth a task of its own


WARM_BYTES = 32 << 20  # sources this large start the pool before their catalogs are read


@contextlib.contextmanager
def early_pool(paths: list):
    """A process pool whose workers boot while the caller reads catalogs (half a second of
    interpreter start-up on this kind of machine), for sources big enough to be profiled in
    parallel; None for small ones, which are profiled in the caller's process."""
    from .workers import process_executor

    workers = _workers()
    size = sum(Path(p).stat().st_size for p in paths if Path(p).exists())
    if workers == 1 or size < WARM_BYTES:
        yield None
        return
    with process_executor(workers) as pool:
        for _ in range(workers):
            pool.submit(os.getpid)
        yield pool


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def profile_tables(con, path, tables: list, has_json: bool, busy_timeout: float, reporter=None,
                   pool=None) -> dict:
    """{table name: TableProfile} of `tables`, counted by SQLite in parallel.

    Every aggregate of the scan is a count, a sum, a min or a max, so a long table is cut into
    rowid ranges and the ranges' answers combine (`combine`) into the whole table's; the ranges
    of all tables, longest first, share one pool of worker processes, one per core. The pool is
    the engine's (`workers.process_executor`), so it also starts inside a Celery job.
    """
    workers = _workers()
    out = {t.name: TableProfile(table=t.name, columns={c.name: ColumnProfile(name=c.name) for c in t.columns})
           for t in tables}
    if workers == 1 or sum(t.row_count for t in tables) < PARALLEL_ROWS:
        for t in tables:
            if reporter:
                reporter.check_cancel()
                reporter.log(f"profiling {t.name} ({t.row_count} rows)")
            out[t.name] = profile_table(con, t, has_json)
            if reporter:
                reporter.add(t.row_count, table=t.name)
        return out
    with contextlib.nullcontext(pool) if pool is not None else _new_pool(workers) as pool:
        work = []
        for t in tables:
            for where, params, span in key_ranges(con, t.name, t.rowid_name, t.row_count, workers):
                work.append((span, t, where, params))
        work.sort(key=lambda w: -min(w[0], w[1].row_count))
        futures = {}
        for span, t, where, params in work:
            futures.setdefault(t.name, []).append(
                pool.submit(profile_range, str(path), t, has_json, where, params, span, busy_timeout))
        for t in sorted(tables, key=lambda t: -t.row_count):
            scans = [wait_result(f, reporter) for f in futures[t.name]]
            absorb(out[t.name], scans[0][0], combine(scans[0][0], [values for _, values in scans]))
            if reporter:
                reporter.add(t.row_count, table=t.name)
    return out


def _new_pool(workers: int):
    from .workers import process_executor

    return process_executor(workers)


def key_ranges(con, table: str, rowid_name: Optional[str], rows: int, workers: int) -> list:
    """[(where, params, most rows it can hold)] cutting a table into rowid ranges: several per
    worker, so the pool stays busy to the end, none shorter than `RANGE_ROWS`."""
    parts = min(workers * 4, rows // RANGE_ROWS)
    if not rowid_name or parts < 2:
        return [("1", (), rows)]
    rid = qi(rowid_name)
    # one query each: SQLite answers a lone min() or max() of the rowid from the b-tree's ends
    lo = con.execute(f"SELECT min({rid}) FROM {qi(table)}").fetchone()[0]
    hi = con.execute(f"SELECT max({rid}) FROM {qi(table)}").fetchone()[0]
    if lo is None:
        return [("1", (), rows)]
    step = max(1, (hi - lo + parts) // parts)
    return [(f"{rid} BETWEEN ? AND ?", (a, min(hi, a + step - 1)), min(hi, a + step - 1) - a + 1)
            for a in range(lo, hi + 1, step)]


def wait_result(future, reporter=None):
    """A pool task's result, answering a cancel request while waiting."""
    while True:
        if reporter:
            reporter.check_cancel()
        try:
            return future.result(timeout=0.5)
        except concurrent.futures.TimeoutError:
            continue
