"""What the data in each column actually looks like, from one scan per table.

SQLite stores any value in any column, so the declared type is a hint. The profile counts,
for every column, the storage classes present and the shapes that matter to PostgreSQL
(ISO timestamps, UUID spellings, JSON documents, boolean spellings, longest text, NUL
characters). Type choices (`typemap`) and the "values that do not fit" of the assessment
are read from it.
"""
from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Optional

from .catalog import Table, qi
from .decisions import WINDOWS

D = "[0-9]"
DATE_GLOB = f"{D}{D}{D}{D}-{D}{D}-{D}{D}"
TS_GLOB = f"{DATE_GLOB}[ T]{D}{D}:{D}{D}*"
TIME_GLOB = f"{D}{D}:{D}{D}*"
HEX = "[0-9a-fA-F]"
UUID36_GLOB = f"{HEX * 8}-{HEX * 4}-{HEX * 4}-{HEX * 4}-{HEX * 12}"
UUID32_GLOB = HEX * 32
BOOL_WORDS = ("true", "false", "t", "f", "yes", "no", "y", "n", "on", "off", "1", "0")


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


def _first_pass(col) -> list[tuple[str, str]]:
    c = qi(col.name)
    t = f"typeof({c})"
    aggs = [("ints", f"sum({t}='integer')"), ("reals", f"sum({t}='real')"),
            ("texts", f"sum({t}='text')"), ("blobs", f"count({c})")]  # blobs: non-null count, fixed below
    if col.affinity in ("TEXT", "BLOB") or is_datetime_type(col.declared_type):
        aggs += [("max_len", f"max(CASE WHEN {t}='text' THEN length({c}) END)"),
                 ("with_nul", f"sum({t}='text' AND instr({c}, char(0)) > 0)")]
    if col.affinity in ("INTEGER", "NUMERIC", "BLOB"):
        aggs += [("min_int", f"min(CASE WHEN {t}='integer' THEN {c} END)"),
                 ("max_int", f"max(CASE WHEN {t}='integer' THEN {c} END)")]
    return aggs


def _second_pass(col, cp: ColumnProfile, has_json: bool) -> list[tuple[str, str]]:
    """Shape counts, asked only of columns whose first-pass counts make them matter."""
    c = qi(col.name)
    t = f"typeof({c})"
    declared = col.declared_type.upper()
    aggs = []
    if cp.reals and col.affinity in ("INTEGER", "NUMERIC", "BLOB"):
        aggs.append(("integral_reals", f"sum({t}='real' AND {c}=CAST({c} AS INTEGER))"))
    if (cp.ints or cp.reals) and is_datetime_type(declared):
        for unit, (lo, hi) in WINDOWS.items():
            aggs.append((f"epoch_{unit}", f"sum({t} IN ('integer','real') AND {c} BETWEEN {lo} AND {hi})"))
    if not cp.texts:
        if "BOOL" in declared:
            aggs.append(("boolish", f"sum({c} IN (0, 1))"))
        return aggs
    if is_datetime_type(declared):
        aggs += [
            ("iso_dates", f"sum({t}='text' AND length({c})=10 AND {c} GLOB '{DATE_GLOB}')"),
            ("iso_timestamps", f"sum({t}='text' AND {c} GLOB '{TS_GLOB}')"),
            # a Z or a sign after the seconds marks an offset (the parser decides the details)
            ("with_offset", f"sum({t}='text' AND length({c}) > 19 AND substr({c}, 17) GLOB '*[Zz+-]*')"),
            ("nonzero_time", f"sum({t}='text' AND length({c}) > 10 AND rtrim(substr({c}, 12), '0:. ') != '')"),
            ("times", f"sum({t}='text' AND length({c}) <= 15 AND {c} GLOB '{TIME_GLOB}')"),
        ]
    if (col.affinity in ("TEXT", "BLOB") or "UUID" in declared or "GUID" in declared) and cp.max_len <= 38:
        aggs += [
            ("uuids", f"sum({t}='text' AND ((length({c})=36 AND {c} GLOB '{UUID36_GLOB}') OR "
                      f"(length({c})=32 AND {c} GLOB '{UUID32_GLOB}')))"),
            ("uuid_spellings", f"(max({t}='text' AND length({c})=36) + max({t}='text' AND length({c})=32))"),
        ]
    if has_json and (col.affinity in ("TEXT", "BLOB") or "JSON" in declared):
        aggs.append(("json_docs", f"sum({t}='text' AND substr({c}, 1, 1) IN ('{{', '[') AND json_valid({c}))"))
        if "JSON" in declared:
            aggs.append(("json_values", f"sum({t} IN ('text','integer','real') AND json_valid({c}))"))
    if "BOOL" in declared:
        words = ", ".join(f"'{w}'" for w in BOOL_WORDS)
        aggs.append(("boolish", f"sum({c} IN (0, 1) OR ({t}='text' AND lower(trim({c})) IN ({words})))"))
    return aggs


def _run_aggregates(con, table: Table, exprs: list, where: str = "1", params: tuple = ()) -> list:
    # SQLite limits the number of result columns; very wide tables are scanned in slices.
    row = []
    step = 1500
    for k in range(0, len(exprs), step):
        row.extend(con.execute(f"SELECT {', '.join(exprs[k:k + step])} FROM {qi(table.name)} WHERE {where}",
                               params).fetchone())
    return row


def _pass_exprs(table: Table, prof: "TableProfile", pass_no: int, has_json: bool) -> tuple[list, list]:
    """(layout [(column, key)], SQL aggregates) of one pass; pass 1 starts with count(*)."""
    layout, exprs = [], ["count(*)"] if pass_no == 1 else []
    for col in table.columns:
        aggs = _first_pass(col) if pass_no == 1 else _second_pass(col, prof.columns[col.name], has_json)
        for key, expr in aggs:
            if key == "uuid_spellings":
                # two flags that combine across key ranges (each range says which spellings it saw)
                c = qi(col.name)
                layout += [(col.name, "uuid36"), (col.name, "uuid32")]
                exprs += [f"max(typeof({c})='text' AND length({c})=36)", f"max(typeof({c})='text' AND length({c})=32)"]
                continue
            layout.append((col.name, key))
            exprs.append(expr)
    return layout, exprs


def combine(layout: list, rows: list, pass_no: int) -> list:
    """One pass's aggregate rows over several key ranges, as if over the whole table: counts
    and sums add, min and max keep the extreme (NULL when a range had no value)."""
    keys = ([("", "rows")] if pass_no == 1 else []) + layout
    out = []
    for k, (_, key) in enumerate(keys):
        values = [r[k] for r in rows if r[k] is not None]
        if key in ("max_len", "max_int", "uuid36", "uuid32"):
            out.append(max(values) if values else None)
        elif key == "min_int":
            out.append(min(values) if values else None)
        else:
            out.append(sum(values))
    return out


def absorb(prof: "TableProfile", layout: list, row: list, pass_no: int) -> None:
    """Set a pass's results on the profile (after `combine`)."""
    if pass_no == 1:
        prof.rows = row[0] or 0
        row = row[1:]
    flags: dict = {}
    for (cname, key), value in zip(layout, row):
        if key in ("uuid36", "uuid32"):
            flags[cname] = flags.get(cname, 0) + int(value or 0)
            continue
        setattr(prof.columns[cname], key, value if key in ("min_int", "max_int") else int(value or 0))
    for cname, n in flags.items():
        prof.columns[cname].uuid_spellings = n
    if pass_no == 1:
        for cp in prof.columns.values():
            cp.blobs -= cp.ints + cp.reals + cp.texts
            cp.nulls = prof.rows - cp.non_null


def profile_table(con: sqlite3.Connection, table: Table, has_json: Optional[bool] = None) -> TableProfile:
    """Scan a table (twice at most) and count what its columns hold."""
    if has_json is None:
        has_json = json_available(con)
    prof = TableProfile(table=table.name)
    for col in table.columns:
        prof.columns[col.name] = ColumnProfile(name=col.name)
    for pass_no in (1, 2):
        layout, exprs = _pass_exprs(table, prof, pass_no, has_json)
        if not exprs:
            continue
        absorb(prof, layout, _run_aggregates(con, table, exprs), pass_no)
        if prof.rows == 0:
            break
    return prof


def profile_range(path: str, table: Table, prof_data: dict, pass_no: int, has_json: bool,
                  where: str, params: tuple, busy_timeout: float = 5.0) -> list:
    """One pass over one key range of a table, in a worker process (see schema.read_sources)."""
    from .sources import open_source

    prof = TableProfile.from_dict(prof_data)
    _, exprs = _pass_exprs(table, prof, pass_no, has_json)
    con = open_source(path, busy_timeout=busy_timeout)
    try:
        return _run_aggregates(con, table, exprs, where, params)
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
    out = []
    for row in con.execute(f"SELECT {key}, {t}, CAST(substr({c}, 1, 60) AS TEXT) FROM {qi(table.name)} WHERE {cond} LIMIT {limit}"):
        out.append({"key": row[0] if len(row) == 3 else list(row[:-2]), "type": row[-2], "value": row[-1]})
    return out
