"""SQL that makes SQLite do the per-value work: COPY text for loading, canonical text for
validating, and the matching canonical expressions on the PostgreSQL side.

Formatting rows in Python costs more than PostgreSQL needs to ingest them, so the loader asks
SQLite to print whole COPY lines (`printf`, `replace`, `hex`) and only checks that each value
is one the SQL formatting is exact for (the *guard*). Rows that fail a guard, and chunks that
PostgreSQL refuses, go through `convert` instead. Floats are the one thing SQLite cannot print
exactly, so they go through small Python functions registered on the connection
(`register_functions`): `float.hex()` for loading, the IEEE bits for comparing.

The canonical text of a value is defined by `convert.canonical_field`; the SQL here is a
faster way to the same text for common values, and falls back to that very function (as
``pgm_canon``) for everything else.
"""
from __future__ import annotations

import json
import sqlite3
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

from . import convert, decisions
from .catalog import qi
from .ddl_names import quote_ident

D = "[0-9]"
TS19 = f"{D}{D}{D}{D}-{D}{D}-{D}{D}[ T]{D}{D}:{D}{D}:{D}{D}"
DATE10 = f"{D}{D}{D}{D}-{D}{D}-{D}{D}"
REJECT_MARK = "\x01reject:"
PRINTF_ARGS = 100  # SQLite allows 127 function arguments by default; stay below


@dataclass
class ColumnSpec:
    """One loaded column: where it comes from, where it goes, how values convert."""

    source: str
    target: str
    kind: str
    params: dict = field(default_factory=dict)
    notnull: bool = False
    always_int: bool = False  # rowid alias or INTEGER column of a STRICT table
    # Proven by the schema step's census of this very file version (see census.census):
    proven: bool = False  # every value passes copy_guard
    plain: bool = False  # no text value needs COPY escaping
    float17: bool = False  # SQLite's 17-digit printf is exact for every value
    nonull: bool = False  # the column holds no NULL
    ts19: bool = False  # every timestamp is spelled 'YYYY-MM-DD HH:MM:SS'
    ts26: bool = False  # every timestamp is spelled 'YYYY-MM-DD HH:MM:SS.ffffff'

    @property
    def bare(self) -> bool:
        """No NULL to handle: the target refuses them, or the census found none."""
        return self.notnull or self.nonull

    @property
    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---- SQLite: loading ---------------------------------------------------------------------

def copy_guard(col: ColumnSpec, census: bool = False) -> Optional[str]:
    """SQL true when SQLite's own formatting of the value is exact; None when always true.

    With ``census`` the guard is returned even when a census already proved it.
    """
    if col.proven and not census:
        return None
    c = qi(col.source)
    t = f"typeof({c})"
    null_ok = f"{c} IS NOT NULL AND " if col.notnull else f"{c} IS NULL OR "
    k = col.kind
    if k == "int":
        if col.always_int and "min" not in col.params:
            return None
        cond = f"{t}='integer'"
        if "min" in col.params:
            cond += f" AND {c} BETWEEN {col.params['min']} AND {col.params['max']}"
    elif k in ("float", "numeric"):
        cond = f"{t} IN ('real','integer')"
    elif k in ("text", "json", "jsonb"):
        cond = f"{t}!='blob' AND NOT instr({c}, char(0))"
        if "length" in col.params:
            cond += f" AND length({c}) <= {col.params['length']}"
    elif k == "bool":
        cond = f"{c} IN (0, 1)"
    elif k == "timestamp":
        cond = (f"{t}='text' AND ((length({c})=19 AND {c} GLOB '{TS19}') OR (length({c})=10 AND {c} GLOB '{DATE10}')"
                f" OR (length({c}) BETWEEN 21 AND 26 AND {c} GLOB '{TS19}.{D}*' AND NOT substr({c}, 21) GLOB '*[^0-9]*'))")
        if col.params.get("epoch"):
            cond = f"({cond}) OR {_epoch_in_range(c, col.params['epoch'])}"
    elif k == "timestamptz":
        cond = f"{t}='text' AND {c} GLOB '{DATE10}[ T]{D}{D}:{D}{D}*' AND NOT {c} GLOB '*[^0-9:. TZz+-]*'"
        if col.params.get("epoch"):
            cond = f"({cond}) OR {_epoch_in_range(c, col.params['epoch'])}"
    elif k == "date":
        cond = f"{t}='text' AND length({c})=10 AND {c} GLOB '{DATE10}'"
    elif k == "time":
        cond = f"{t}='text' AND {c} GLOB '{D}{D}:{D}{D}:{D}{D}*' AND NOT {c} GLOB '*[^0-9:.]*'"
    elif k == "uuid":
        cond = f"{t}='text' AND NOT instr({c}, '\\')"
    elif k == "bytea":
        return f"({c} IS NOT NULL)" if col.notnull else None
    else:
        cond = "0"
    return f"({null_ok}({cond}))"


def _epoch_units(choice: str) -> list:
    return [choice] if choice in decisions.EPOCH_FACTORS else list(decisions.EPOCH_FACTORS)


def _epoch_in_range(c: str, choice: str) -> str:
    """SQL true for an integer SQLite can print as a timestamp under an epoch decision: inside
    the unit's range (every other number goes through `convert`, which has the last word)."""
    ranges = " OR ".join(f"{c} BETWEEN {decisions.WINDOWS[u][0]} AND {decisions.WINDOWS[u][1]}"
                         for u in _epoch_units(choice))
    return f"(typeof({c})='integer' AND ({ranges}))"


def _epoch_text(c: str, choice: str, tz: bool) -> str:
    """SQL printing an in-range epoch integer as PostgreSQL prints the timestamp (UTC)."""
    cases = []
    for unit in _epoch_units(choice):
        f = decisions.EPOCH_FACTORS[unit]
        if f == 1:
            text = f"strftime('%Y-%m-%d %H:%M:%S', {c}, 'unixepoch')"
        else:
            digits = len(str(f)) - 1
            text = (f"strftime('%Y-%m-%d %H:%M:%S', {c} / {f}, 'unixepoch') || "
                    f"rtrim(rtrim(printf('.%0{digits}d', {c} % {f}), '0'), '.')")
        lo, hi = decisions.WINDOWS[unit]
        cases.append((f"{c} BETWEEN {lo} AND {hi}", text + (" || '+00'" if tz else "")))
    if len(cases) == 1:
        return cases[0][1]
    return "CASE " + " ".join(f"WHEN {w} THEN {t}" for w, t in cases) + " END"


def needs_escape(c: str) -> str:
    """SQL true when a text value holds a character COPY's text format escapes."""
    return f"(instr({c}, '\\') OR instr({c}, '\t') OR instr({c}, '\n') OR instr({c}, '\r'))"


def float17_exact(c: str) -> str:
    """SQL true when SQLite's 17-digit printf of the value reads back as the same double.

    Within 1e-10..1e17 SQLite parses a 17-digit decimal exactly (the powers of ten involved
    are exact in its long double), so this check is itself exact; outside it, floats go
    through float.hex().
    """
    return (f"(typeof({c}) != 'real' OR {c} = 0 OR (abs({c}) BETWEEN 1e-10 AND 1e17 "
            f"AND CAST(printf('%!.17g', {c}) AS REAL) = {c}))")


def _escaped(c: str) -> str:
    return (f"CASE WHEN instr({c}, '\\') OR instr({c}, char(9)) OR instr({c}, char(10)) OR instr({c}, char(13)) "
            f"THEN replace(replace(replace(replace({c}, '\\', '\\\\'), char(9), '\\t'), char(10), '\\n'), "
            f"char(13), '\\r') ELSE {c} END")


def copy_piece(col: ColumnSpec):
    """SQL giving the COPY text of a value that passed `copy_guard` (\\N for NULL).

    Returns a `printf_line` piece: where possible the value goes straight into the line's
    printf with its own format, which saves a nested printf (a third of the cost) per value.
    """
    c = qi(col.source)
    k = col.kind
    # No NULL to print: the target refuses them (the guard sends them to `convert`) or the
    # census found none. Every function call saved here is saved for every row.
    bare = col.notnull or col.nonull

    def null_or(expr: str) -> str:
        return expr if bare else f"CASE WHEN {c} IS NULL THEN '\\N' ELSE {expr} END"

    if k == "int":
        return c if bare else f"ifnull({c}, '\\N')"
    if k == "float" and col.float17:
        return ("%!.17g", [c]) if bare else null_or(f"printf('%!.17g', {c})")
    if k == "float":
        return f"CASE typeof({c}) WHEN 'real' THEN pgm_hexfloat({c}) WHEN 'integer' THEN {c} ELSE '\\N' END"
    if k == "numeric":
        return f"CASE typeof({c}) WHEN 'integer' THEN {c} WHEN 'real' THEN pgm_repr({c}) ELSE '\\N' END"
    if k in ("text", "json", "jsonb"):
        if col.plain:
            return c if bare else f"ifnull({c}, '\\N')"
        return null_or(_escaped(c))
    if k == "bool":
        return f"CASE {c} WHEN 1 THEN 't' WHEN 0 THEN 'f' ELSE '\\N' END"
    if k == "bytea":
        return ("\\\\x%s", [f"hex({c})"]) if bare else null_or(f"'\\\\x' || hex({c})")
    if k in ("timestamp", "timestamptz") and col.params.get("epoch"):
        # the guard let through only text and in-range integers
        return null_or(f"CASE WHEN typeof({c})='integer' THEN {_epoch_text(c, col.params['epoch'], k == 'timestamptz')} "
                       f"ELSE {c} END")
    return c if bare else f"ifnull({c}, '\\N')"


def strict_select(col: ColumnSpec) -> tuple[str, str]:
    """(storage class, value) expressions for reading a value for `convert`."""
    c = qi(col.source)
    if col.kind in ("text", "json", "jsonb"):
        value = f"CASE WHEN typeof({c})='real' THEN CAST({c} AS TEXT) ELSE {c} END"
    elif col.kind == "bytea":
        value = f"CAST({c} AS BLOB)"
    else:
        value = c
    if col.kind != "bytea":
        # Text that is not UTF-8 (SQLite keeps whatever bytes it was given) cannot even reach a
        # Python function as an argument: sqlite3 fails the whole query while decoding it. As
        # bytes it reaches `convert`, which reads the storage class from typeof and rejects the
        # value with its reason, row by row.
        value = f"CASE WHEN typeof({c})='text' THEN CAST({c} AS BLOB) ELSE {value} END"
    return f"typeof({c})", value


def printf_line(pieces: list) -> str:
    """One SQL expression joining pieces with tabs.

    A piece is an SQL expression (printed with %s) or a (format, [expressions]) pair, so a
    field made of several parts is printed without building intermediate strings. Long rows
    are split over several printf calls to respect SQLite's argument limit.
    """
    groups, fmts, args = [], [], []
    for piece in pieces:
        fmt, exprs = piece if isinstance(piece, tuple) else ("%s", [piece])
        if args and len(args) + len(exprs) > PRINTF_ARGS:
            groups.append(f"printf({_lit(chr(9).join(fmts))}, {', '.join(args)})")
            fmts, args = [], []
        fmts.append(fmt)
        args.extend(exprs)
    groups.append(f"printf({_lit(chr(9).join(fmts))}, {', '.join(args)})")
    return " || char(9) || ".join(groups) if len(groups) > 1 else groups[0]


def copy_line(cols: list[ColumnSpec]) -> tuple[str, Optional[str]]:
    """(line expression, guard expression or None) for a whole row."""
    guards = [g for g in (copy_guard(c) for c in cols) if g]
    return printf_line([copy_piece(c) for c in cols]), (" AND ".join(guards) if guards else None)


# ---- SQLite: validating ------------------------------------------------------------------

def _udf(col: ColumnSpec, c: str) -> str:
    return f"pgm_canon({_lit(col.kind)}, {_lit(col.params_json)}, typeof({c}), {strict_select(col)[1]})"


def sqlite_canonical(col: ColumnSpec):
    """SQL giving `convert.canonical_field` of a source value (a `printf_line` piece).

    Census flags (valid for the file version counted) let most columns skip their checks;
    a wrong flag only makes a range differ, and differing ranges are compared exactly.
    """
    c = qi(col.source)
    t = f"typeof({c})"
    k = col.kind
    fallback = _udf(col, c)
    if k == "int":
        if (col.always_int and "min" not in col.params) or col.proven:
            return c if col.bare else f"ifnull({c}, '\\N')"
        return f"CASE {t} WHEN 'integer' THEN {c} WHEN 'null' THEN '\\N' ELSE {fallback} END"
    if k == "float":
        fn = "pgm_fbits4" if col.params.get("float4") else "pgm_fbits"
        if col.proven and col.bare:
            return f"{fn}({c})"
        return f"CASE {t} WHEN 'real' THEN {fn}({c}) WHEN 'integer' THEN {fn}({c}) WHEN 'null' THEN '\\N' ELSE {fallback} END"
    if k == "numeric":
        scale = col.params.get("scale", 0)
        suffix = f" || '.{'0' * scale}'" if scale else ""
        return f"CASE {t} WHEN 'integer' THEN {c}{suffix} WHEN 'null' THEN '\\N' ELSE {fallback} END"
    if k == "text" and col.params.get("nul"):
        # SQLite's text functions stop at a NUL: those values go to convert, which strips them
        return (f"CASE WHEN {c} IS NULL THEN '{convert.TEXT_NULL}' WHEN {t}='text' AND instr({c}, char(0)) > 0 "
                f"THEN {fallback} ELSE printf('%d:%s', length({c}), {c}) END")
    if k in ("text", "json"):
        # length-prefixed, -1 for NULL: unambiguous whatever the text holds (see convert.TEXT_NULL)
        return ("%d:%s", [f"length({c})" if col.bare else f"ifnull(length({c}), -1)", c])
    if k == "bool":
        return f"CASE WHEN {c} IS NULL THEN '\\N' WHEN {c} = 1 THEN 'true' WHEN {c} = 0 THEN 'false' ELSE {fallback} END"
    if k in ("timestamp", "timestamptz") and col.params.get("epoch"):
        epoch = _epoch_text(c, col.params["epoch"], k == "timestamptz")
        return (f"CASE WHEN {c} IS NULL THEN '\\N' WHEN {_epoch_in_range(c, col.params['epoch'])} THEN {epoch} "
                f"ELSE {fallback} END")
    if k == "timestamp" and col.proven and (col.ts19 or col.ts26):
        return c if col.bare else f"ifnull({c}, '\\N')"  # already in the form pg_canonical prints
    if k == "timestamp" and col.proven:
        return (f"CASE WHEN {c} IS NULL THEN '\\N' WHEN length({c})=19 THEN replace({c}, 'T', ' ') "
                f"WHEN length({c})=10 THEN {c} || ' 00:00:00' "
                f"ELSE rtrim(rtrim(replace({c}, 'T', ' '), '0'), '.') END")
    if k == "timestamp":
        return (f"CASE WHEN {c} IS NULL THEN '\\N' "
                f"WHEN {t}='text' AND length({c})=19 AND {c} GLOB '{TS19}' THEN replace({c}, 'T', ' ') "
                f"WHEN {t}='text' AND length({c})=10 AND {c} GLOB '{DATE10}' THEN {c} || ' 00:00:00' "
                f"WHEN {t}='text' AND length({c}) BETWEEN 21 AND 26 AND {c} GLOB '{TS19}.{D}*' "
                f"AND NOT substr({c}, 21) GLOB '*[^0-9]*' THEN rtrim(rtrim(replace({c}, 'T', ' '), '0'), '.') "
                f"ELSE {fallback} END")
    if k == "date":
        return (f"CASE WHEN {c} IS NULL THEN '\\N' WHEN {t}='text' AND length({c})=10 AND {c} GLOB '{DATE10}' "
                f"THEN {c} ELSE {fallback} END")
    if k == "uuid":
        return (f"CASE WHEN {c} IS NULL THEN '\\N' WHEN {t}='text' AND length({c})=36 AND substr({c}, 9, 1)='-' "
                f"AND substr({c}, 14, 1)='-' AND substr({c}, 19, 1)='-' AND substr({c}, 24, 1)='-' THEN lower({c}) "
                f"WHEN {t}='text' AND length({c})=32 THEN lower(substr({c}, 1, 8) || '-' || substr({c}, 9, 4) || '-' || "
                f"substr({c}, 13, 4) || '-' || substr({c}, 17, 4) || '-' || substr({c}, 21)) ELSE {fallback} END")
    if k == "bytea":
        return f"CASE WHEN {c} IS NULL THEN '\\N' ELSE lower(hex({c})) END"
    return f"CASE WHEN {c} IS NULL THEN '\\N' ELSE {fallback} END"


def sqlite_canonical_line(cols: list[ColumnSpec]) -> str:
    return printf_line([sqlite_canonical(c) for c in cols])


# ---- PostgreSQL: validating --------------------------------------------------------------

def pg_canonical(col: ColumnSpec) -> str:
    """PostgreSQL SQL giving the canonical text of a target value ('\\N' for NULL)."""
    c = quote_ident(col.target)
    k = col.kind
    if k == "float":
        expr = f"encode({'float4send' if col.params.get('float4') else 'float8send'}({c}), 'hex')"
    elif k in ("text", "json"):
        if col.notnull:
            return f"length({c})::text || ':' || {c}"
        return f"coalesce(length({c}), -1)::text || ':' || coalesce({c}, '')"
    elif k == "bytea":
        expr = f"encode({c}, 'hex')"
    elif k == "timestamp" and col.params.get("us6"):
        expr = f"to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"
    else:
        expr = f"{c}::text"
    # target NOT NULL columns hold no NULL whatever the census said
    return expr if col.notnull else f"coalesce({expr}, '\\N')"


def pg_canonical_line(cols: list[ColumnSpec]) -> str:
    """One expression for the whole row: concat_ws builds it in one allocation (its arguments
    are never NULL here), in groups under PostgreSQL's 100-argument limit."""
    if not cols:
        return "''"
    exprs = [pg_canonical(c) for c in cols]
    groups = [f"concat_ws(E'\\t', {', '.join(exprs[k:k + 90])})" for k in range(0, len(exprs), 90)]
    return groups[0] if len(groups) == 1 else f"concat_ws(E'\\t', {', '.join(groups)})"


# ---- Python functions SQLite calls -------------------------------------------------------

_pack_double = struct.Struct(">d").pack


def _fbits(x):
    # called once per float value: kept minimal (ints convert; SQLite stores no NaN)
    try:
        return _pack_double(x).hex()
    except (TypeError, struct.error):
        return REJECT_MARK + "not a number"


def _fbits4(x):
    try:
        return convert.float_bits(convert.to_float("real", float(x), {"float4": True}), True)
    except (TypeError, ValueError, convert.Reject):
        return REJECT_MARK + "not a float4"


def _repr(x):
    return convert.float_text(x) if isinstance(x, float) else x


@lru_cache(maxsize=256)
def _params(params_json: str) -> dict:
    return json.loads(params_json)


def _canon(kind, params_json, typ, value):
    try:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        return convert.canonical_field(kind, _params(params_json), typ, value)
    except convert.Reject as exc:
        return REJECT_MARK + str(exc)
    except Exception as exc:  # an exception inside SQLite would abort the whole query
        return REJECT_MARK + f"{type(exc).__name__}: {exc}"


def register_functions(con: sqlite3.Connection) -> None:
    """Make the pgm_* functions available to SQL on this connection."""
    # only ever called on REAL values (see copy_piece); PostgreSQL reads 'inf' and hex floats
    con.create_function("pgm_hexfloat", 1, float.hex, deterministic=True)
    con.create_function("pgm_repr", 1, _repr, deterministic=True)
    con.create_function("pgm_fbits", 1, _fbits, deterministic=True)
    con.create_function("pgm_fbits4", 1, _fbits4, deterministic=True)
    con.create_function("pgm_canon", 4, _canon, deterministic=True)
