"""Reviewed decisions about values PostgreSQL cannot take as they are: epoch numbers in date/time
columns, and NUL characters in text.

The schema step proposes a decision per column and writes it as a comment beside the column in
unified_schema.sql (``-- decision epoch=s: ...``), so approving the file approves the decision
and the sha256 binding covers it. A reviewer overrides it by editing the word after ``=``; the
run and validate steps read the decisions back from the file (`from_statements`), never from
plan.json, so what was approved is what happens. Without a decision comment a column's odd
values are rejected, as before.

Decisions
---------
``epoch=s|ms|us``  every number in the column is Unix time in seconds, milliseconds or
                   microseconds (UTC); ``epoch=auto`` reads each number by its range (`WINDOWS`)
                   and rejects numbers outside every range; ``epoch=reject`` rejects numbers.
``nul=strip``      NUL characters are removed from text (PostgreSQL text cannot hold them);
                   ``nul=reject`` rejects those rows; ``nul=bytea`` keeps the bytes, and needs
                   the column's type changed to bytea in the same file.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from .errors import InputError

EPOCH_FACTORS = {"s": 1, "ms": 1_000, "us": 1_000_000}
EPOCH_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
# 1971-01-01 .. 2100-01-01 in each unit: the ranges do not overlap, so a number's range names
# its unit. Numbers below 1971 are more often counters or flags than dates.
EPOCH_LOW, EPOCH_HIGH = 31_536_000, 4_102_444_800
WINDOWS = {unit: (EPOCH_LOW * f, EPOCH_HIGH * f - 1) for unit, f in EPOCH_FACTORS.items()}

CHOICES = {"epoch": ("s", "ms", "us", "auto", "reject"), "nul": ("strip", "reject", "bytea")}
# which column kinds (the target's real type) a decision can apply to
APPLIES_TO = {"epoch": ("timestamp", "timestamptz"), "nul": ("text",)}
_KIND_WORDS = {"epoch": "a timestamp column", "nul": "a text column"}

_DECISION = re.compile(r"--.*?\bdecision\s+(\w+)\s*=\s*([\w-]+)")
_COLUMN_LINE = re.compile(r'^\s+("(?:[^"]|"")*"|[^\s",]+)\s')


def epoch_comment(unit: str, numbers: int, iso: int, other: int, declared: str) -> str:
    """The decision comment of a date/time column holding epoch numbers (deterministic)."""
    what = f"Unix epoch {EPOCH_WORDS[unit]}" if unit in EPOCH_WORDS else \
        "Unix epoch numbers (seconds, milliseconds or microseconds, read by range)"
    text = (f"decision epoch={unit}: declared {declared}; {numbers} values are {what}, loaded as UTC "
            f"timestamp with time zone")
    if iso:
        text += "; ISO text without an offset is taken as UTC"
    if other:
        text += f"; {other} values are neither and will be rejected"
    return text + " (or epoch=s, ms, us, auto, reject)"


def nul_comment(count: int) -> str:
    return (f"decision nul=strip: {count} values hold NUL characters, which PostgreSQL text cannot store; "
            f"they are removed (or nul=reject; to keep the bytes change the type to bytea and write nul=bytea)")


_TYPE_END = re.compile(r"\s+(?:NOT\s+NULL|NULL|DEFAULT|GENERATED|CONSTRAINT|CHECK|PRIMARY|UNIQUE|REFERENCES|"
                       r"COLLATE)\b|\s*,?\s*--", re.IGNORECASE)


def from_statements(statements: list, kind_of: Optional[Callable[[str], str]] = None) -> dict:
    """{(schema, table, column): {decision: choice}} from the table statements of unified_schema.sql.

    Raises `InputError` naming the column for a decision or a choice pgmigrate does not know,
    and, with `kind_of` (type text -> conversion kind), for a decision the column's type in the
    file cannot take -- before anything is written to the target.
    """
    out: dict = {}
    for st in statements:
        if st.section != "table":
            continue
        for line in st.sql.splitlines():
            found = _DECISION.findall(line)
            if not found:
                continue
            m = _COLUMN_LINE.match(line)
            if not m:
                continue
            col = m.group(1)
            col = col[1:-1].replace('""', '"') if col.startswith('"') else col
            where = f"unified_schema.sql: column {st.schema}.{st.table}.{col}"
            for name, choice in found:
                name, choice = name.lower(), choice.lower()
                if name not in CHOICES:
                    raise InputError(f"{where}: 'decision {name}=' is not a decision pgmigrate knows "
                                     f"({', '.join(CHOICES)})")
                if choice not in CHOICES[name]:
                    raise InputError(f"{where}: {name}={choice} is not one of {', '.join(CHOICES[name])}")
                out.setdefault((st.schema, st.table, col), {})[name] = choice
            if kind_of is not None:
                type_text = _TYPE_END.split(line[m.end():], maxsplit=1)[0].strip().rstrip(",")
                check_kind(where, out[(st.schema, st.table, col)], kind_of(type_text))
    return out


def check_kind(where: str, decisions: dict, kind: str) -> dict:
    """The decisions that change how values convert (`convert` params), after checking that each
    fits the column's real type; `InputError` names the column otherwise."""
    params = {}
    for name, choice in decisions.items():
        if name == "nul" and choice == "bytea":
            if kind != "bytea":
                raise InputError(f"{where}: nul=bytea keeps the bytes only in a bytea column; change the "
                                 f"column's type to bytea in unified_schema.sql (or write nul=strip)")
            continue
        if kind not in APPLIES_TO[name]:
            raise InputError(f"{where}: decision {name}={choice} applies to {_KIND_WORDS[name]}, but the "
                             f"column is of another type in unified_schema.sql")
        if choice != "reject":
            params[name] = choice
    return params


def epoch_unit(value, choice: str) -> Optional[str]:
    """The unit a number is read in under `choice`, or None (not an epoch value)."""
    if choice in EPOCH_FACTORS:
        return choice
    if choice == "auto":
        for unit, (lo, hi) in WINDOWS.items():
            if lo <= value <= hi:
                return unit
    return None


def count_sql(c: str, params: dict) -> Optional[str]:
    """SQLite aggregate counting the values a column's decisions convert (None: nothing)."""
    if "epoch" in params:
        number = f"typeof({c}) IN ('integer', 'real')"
        if params["epoch"] == "auto":
            ranges = " OR ".join(f"{c} BETWEEN {lo} AND {hi}" for lo, hi in WINDOWS.values())
            return f"sum({number} AND ({ranges}))"
        return f"sum({number})"
    if params.get("nul") == "strip":
        return f"sum(typeof({c}) = 'text' AND instr({c}, char(0)) > 0)"
    return None


def decision_words(params: dict) -> str:
    """A column decision in the words its report shows (`epoch=...`, `nul=strip`)."""
    if "epoch" in params:
        return f"epoch={params['epoch']}"
    return f"nul={params.get('nul')}"


def converted(con, source: str, table: str, specs: list) -> list[dict]:
    """How many values of each column a decision converts ({table, column, decision, values}),
    counted by SQLite in one scan; nothing is scanned for a table without decisions."""
    from .catalog import qi

    counted = [(s, count_sql(qi(s.source), s.params)) for s in specs]
    counted = [(s, sql) for s, sql in counted if sql]
    if not counted:
        return []
    row = con.execute(f"SELECT {', '.join(sql for _, sql in counted)} FROM {qi(table)}").fetchone()
    return [{"table": f"{source}.{table}", "column": s.source, "decision": decision_words(s.params), "values": int(n or 0)}
            for (s, _), n in zip(counted, row)]
