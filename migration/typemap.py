"""Choosing a PostgreSQL type for each SQLite column, from its declared type and its data.

The declared type says what the application meant; the profile says what is really there.
The rule of thumb: keep what was declared when the data fits it; fall back to a type that
holds every value when the data clearly says otherwise, and write down why (`reason`) so the
person reviewing unified_schema.sql sees every decision that is not a plain translation.

Every chosen type maps to a `kind`, the family of conversion the loader and the validator
apply to its values (see `convert`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from . import decisions
from .catalog import Column
from .profile import ColumnProfile, is_datetime_type

KINDS = ("int", "float", "numeric", "text", "bool", "timestamp", "timestamptz", "date", "time", "bytea",
         "jsonb", "json", "uuid")
MAX_VARCHAR = 10485760


@dataclass
class ColumnType:
    pg_type: str
    kind: str
    params: dict = field(default_factory=dict)  # precision/scale for numeric, length for varchar
    reason: str = ""  # why the type differs from a plain reading of the declared type
    # reviewed decisions (see decisions): written into unified_schema.sql beside the column
    decisions: dict = field(default_factory=dict)


def _params(declared: str) -> list[int]:
    m = re.search(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", declared)
    if not m:
        return []
    return [int(g) for g in m.groups() if g is not None]


def _from_data(cp: Optional[ColumnProfile], why: str) -> ColumnType:
    if cp is None or cp.non_null == 0:
        return ColumnType("text", "text", reason=f"{why}; no values to go by: text")
    if cp.blobs:
        return ColumnType("bytea", "bytea", reason=f"{why}; holds blobs: bytea")
    if cp.texts:
        return ColumnType("text", "text", reason=f"{why}; holds text: text")
    if cp.reals:
        return ColumnType("double precision", "float", reason=f"{why}; holds real numbers: double precision")
    return ColumnType("bigint", "int", reason=f"{why}; holds integers: bigint")


def choose_type(col: Column, cp: Optional[ColumnProfile]) -> ColumnType:
    """The PostgreSQL type for one column (UUID decisions are made later, per key group), with
    the decisions a reviewer approves in unified_schema.sql (epoch numbers, NUL characters)."""
    ctype = _choose_type(col, cp)
    if ctype.kind == "text" and cp is not None and cp.with_nul:
        ctype.decisions["nul"] = "strip"
        ctype.reason = decisions.nul_comment(cp.with_nul) + (f"; {ctype.reason}" if ctype.reason else "")
    return ctype


def _choose_type(col: Column, cp: Optional[ColumnProfile]) -> ColumnType:
    declared = (col.declared_type or "").strip()
    up = declared.upper()
    nn = cp.non_null if cp else 0
    if not up:
        return _from_data(cp, "no declared type")
    if "BOOL" in up:
        if cp is None or cp.boolish >= nn:
            return ColumnType("boolean", "bool")
        if cp.texts == 0 and cp.reals == 0 and cp.blobs == 0:
            return ColumnType("bigint", "int", reason=f"declared {declared} but holds integers other than 0/1: bigint")
        return ColumnType("text", "text", reason=f"declared {declared} but holds values that are not booleans: text")
    if "JSON" in up:
        if cp is None or cp.json_values >= nn:
            return ColumnType("jsonb", "jsonb")
        return ColumnType("text", "text", reason=f"declared {declared} but {nn - cp.json_values} values are not valid JSON: text")
    if "UUID" in up or "GUID" in up:
        if cp is None or cp.uuids >= nn:
            return ColumnType("uuid", "uuid")
        return ColumnType("text", "text", reason=f"declared {declared} but {nn - cp.uuids} values are not UUIDs: text")
    if is_datetime_type(up) and "INT" not in up:
        return _datetime_type(declared, up, cp)
    if "INT" in up:
        if cp is not None and nn and cp.texts == nn:
            return ColumnType("text", "text", reason=f"declared {declared} but every value is text: text")
        return ColumnType("bigint", "int")
    if "CHAR" in up or "CLOB" in up or "TEXT" in up:
        p = _params(up)
        if cp is not None and cp.json_docs and cp.json_docs == nn and "CHAR" not in up:
            return ColumnType("jsonb", "jsonb", reason=f"declared {declared}; every value is a JSON document: jsonb")
        if p and "CHAR" in up and 0 < p[0] <= MAX_VARCHAR:
            if cp is None or cp.max_len <= p[0]:
                return ColumnType(f"varchar({p[0]})", "text", params={"length": p[0]})
            return ColumnType("text", "text", reason=f"declared {declared} but holds values up to {cp.max_len} characters: text")
        return ColumnType("text", "text")
    if "BLOB" in up:
        return ColumnType("bytea", "bytea")
    if "REAL" in up or "FLOA" in up or "DOUB" in up:
        return ColumnType("double precision", "float")
    if "DEC" in up or "NUMERIC" in up or "MONEY" in up:
        p = _params(up)
        if p and 1 <= p[0] <= 1000 and (len(p) == 1 or 0 <= p[1] <= p[0]):
            scale = p[1] if len(p) > 1 else 0
            return ColumnType(f"numeric({p[0]},{scale})", "numeric", params={"precision": p[0], "scale": scale})
        return ColumnType("numeric", "numeric")
    return _from_data(cp, f"declared type {declared} has no PostgreSQL equivalent")


def _datetime_type(declared: str, up: str, cp: Optional[ColumnProfile]) -> ColumnType:
    nn = cp.non_null if cp else 0
    tz = "TZ" in up.replace(" ", "") or "WITH TIME ZONE" in up or "WITH TIMEZONE" in up
    if "STAMP" in up or "DATETIME" in up or ("DATE" in up and "TIME" in up):
        iso = (cp.iso_timestamps + cp.iso_dates) if cp else 0
        kind = "timestamptz" if tz or (cp and cp.with_offset) else "timestamp"
        pg = "timestamp with time zone" if kind == "timestamptz" else "timestamp without time zone"
        reason = "" if not (cp and cp.with_offset and not tz) else \
            f"declared {declared}; {cp.with_offset} values carry a UTC offset: timestamp with time zone"
    elif "DATE" in up:
        iso = (cp.iso_timestamps + cp.iso_dates) if cp else 0
        if cp and cp.nonzero_time:
            return ColumnType("timestamp without time zone", "timestamp",
                              reason=f"declared {declared} but {cp.nonzero_time} values have a time of day: timestamp")
        kind, pg, reason = "date", "date", ""
    else:
        iso = cp.times if cp else 0
        kind, pg, reason = "time", "time without time zone", ""
    if cp is None or nn == 0 or iso == nn:
        return ColumnType(pg, kind, reason=reason)
    if cp.epochs and kind != "time" and (iso + cp.epochs) * 2 >= nn:
        # Unix time numbers, read by the range they fall in: a reviewed decision, not a guess
        units = [u for u in decisions.EPOCH_FACTORS if getattr(cp, f"epoch_{u}")]
        numbers = cp.ints + cp.reals
        unit = units[0] if len(units) == 1 and cp.epochs == numbers else "auto"
        comment = decisions.epoch_comment(unit, cp.epochs, iso, nn - iso - cp.epochs, declared)
        return ColumnType("timestamp with time zone", "timestamptz", reason=comment, decisions={"epoch": unit})
    if cp.ints == nn:
        return ColumnType("bigint", "int", reason=f"declared {declared} but every value is an integer "
                                                  f"(epoch seconds?): bigint, for the application to interpret")
    if iso * 2 >= nn:
        return ColumnType(pg, kind, reason=(reason + "; " if reason else "") +
                          f"{nn - iso} values are not ISO 8601 and will be rejected")
    return ColumnType("text", "text", reason=f"declared {declared} but most values are not ISO 8601: text")


_PG_KIND = [
    (re.compile(r"^(bigint|integer|smallint)$"), "int"),
    (re.compile(r"^(double precision|real)$"), "float"),
    (re.compile(r"^numeric"), "numeric"),
    (re.compile(r"^(text|character varying.*|character\(.*|"
                r"varchar.*|char.*|citext|name)$"), "text"),
    (re.compile(r"^boolean$"), "bool"),
    (re.compile(r"^timestamp(\(\d\))? without time zone$"), "timestamp"),
    (re.compile(r"^timestamp(\(\d\))? with time zone$"), "timestamptz"),
    (re.compile(r"^date$"), "date"),
    (re.compile(r"^time(\(\d\))? without time zone$"), "time"),
    (re.compile(r"^bytea$"), "bytea"),
    (re.compile(r"^jsonb$"), "jsonb"),
    (re.compile(r"^json$"), "json"),
    (re.compile(r"^uuid$"), "uuid"),
]


def kind_for_pg_type(pg_type: str) -> tuple[str, dict]:
    """The conversion kind (and parameters) for a type as PostgreSQL's format_type() spells it.

    The loader reads the target's real column types, so a reviewer who edits a type in
    unified_schema.sql gets values converted for the type they chose.
    """
    t = pg_type.strip().lower()
    params: dict = {}
    m = re.match(r"^numeric\((\d+),(\d+)\)$", t)
    if m:
        params = {"precision": int(m.group(1)), "scale": int(m.group(2))}
    m = re.match(r"^(character varying|varchar)\((\d+)\)$", t)
    if m:
        params = {"length": int(m.group(2))}
    if t == "smallint":
        params = {"min": -32768, "max": 32767}
    elif t == "integer":
        params = {"min": -2147483648, "max": 2147483647}
    if t == "real":
        params = {"float4": True}
    for pattern, kind in _PG_KIND:
        if pattern.match(t):
            return kind, params
    return "text", {"unknown_type": t}
