"""PostgreSQL names: quoting, length limits, and naming the objects the engine creates.

Identifiers are quoted only when they must be (upper case, spaces, non-ASCII, reserved
words), so the reviewed schema reads like hand-written SQL. Names longer than PostgreSQL's
63-byte limit are shortened with a hash suffix rather than silently truncated by the server.
"""
from __future__ import annotations

import hashlib
import re

MAX_IDENT = 63
# PostgreSQL 15 keywords of the reserved, type/function and column-name categories
# (pg_get_keywords() catcode R, T, C): quoted whenever used as names.
RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean
both case cast char character check coalesce collate collation column concurrently constraint
create cross current_catalog current_date current_role current_schema current_time
current_timestamp current_user dec decimal default deferrable desc distinct do else end except
exists extract false fetch float for foreign freeze from full grant greatest group grouping having
ilike in initially inner inout int integer intersect interval into is isnull join lateral leading
least left like limit localtime localtimestamp national natural nchar none normalize not notnull
null nullif numeric offset on only or order out outer overlaps overlay placing position precision
primary real references returning right row select session_user setof similar smallint some
substring symmetric table tablesample then time timestamp to trailing treat trim true union unique
user using values varchar variadic verbose when where window with xmlattributes xmlconcat
xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
""".split())
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def quote_ident(name: str) -> str:
    """`name` as a PostgreSQL identifier, quoted only when needed."""
    if _PLAIN.match(name) and name not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """schema.name, each part quoted as needed."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def fit_name(name: str) -> str:
    """`name` shortened to PostgreSQL's 63-byte limit, keeping it unique with a hash suffix."""
    if len(name.encode("utf-8")) <= MAX_IDENT:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    head = name.encode("utf-8")[:MAX_IDENT - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def schema_name(source_name: str) -> str:
    """The PostgreSQL schema for a source: its name, lower case, with other characters as '_'."""
    name = re.sub(r"[^a-z0-9_]", "_", source_name.lower())
    if not name or name[0].isdigit():
        name = "s_" + name
    if name.startswith("pg_"):
        name = "src_" + name
    return fit_name(name)


class NameSpace:
    """Hands out unique relation/constraint names within one PostgreSQL schema."""

    def __init__(self):
        self.used: set[str] = set()

    def claim(self, wanted: str) -> str:
        """`wanted` (fitted to 63 bytes), or a numbered variant if already taken."""
        name = fit_name(wanted)
        k = 1
        while name.lower() in self.used:
            k += 1
            name = fit_name(f"{wanted}_{k}")
        self.used.add(name.lower())
        return name
