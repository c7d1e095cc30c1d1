"""What a SQLite file holds: tables, columns, keys, indexes, foreign keys, views, triggers.

`read_catalog` asks SQLite's PRAGMAs for structure and `sqlite_sql` for what PRAGMAs do not
tell. Everything the engine decides later (types, DDL, load queries) starts from these
dataclasses, so the SQLite file is read for its structure exactly once per step.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import sqlite_sql
from .sources import describe_sqlite_error

INTERNAL_TABLES = {"sqlite_sequence", "sqlite_stat1", "sqlite_stat2", "sqlite_stat3", "sqlite_stat4"}


def qi(name: str) -> str:
    """Quote an identifier for SQLite."""
    return '"' + name.replace('"', '""') + '"'


def affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (rules of section 3.1 of the SQLite docs)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


@dataclass
class Column:
    name: str
    declared_type: str
    notnull: bool = False
    default: Optional[str] = None
    pk: int = 0
    hidden: int = 0
    generated: Optional[str] = None
    generated_stored: bool = False
    collation: Optional[str] = None
    checks: list = field(default_factory=list)

    @property
    def affinity(self) -> str:
        return affinity(self.declared_type)

    @property
    def is_generated(self) -> bool:
        return self.hidden in (2, 3)


@dataclass
class Index:
    name: str
    unique: bool
    origin: str  # c: CREATE INDEX, u: UNIQUE constraint, pk: PRIMARY KEY
    partial: bool
    columns: list  # column name, or None for an expression part
    parts: list  # SQL text of each part
    desc: list
    collations: list
    where: Optional[str] = None
    sql: Optional[str] = None
    part_tokens: Optional[list] = None
    where_tokens: Optional[list] = None

    @property
    def has_expressions(self) -> bool:
        return any(c is None for c in self.columns)


@dataclass
class ForeignKey:
    id: int
    columns: list
    ref_table: str
    ref_columns: list
    on_update: str = "NO ACTION"
    on_delete: str = "NO ACTION"
    match: str = "NONE"


@dataclass
class Table:
    name: str
    sql: str
    columns: list
    without_rowid: bool = False
    strict: bool = False
    autoincrement: bool = False
    rowid_alias: Optional[str] = None
    pk: list = field(default_factory=list)
    pk_name: Optional[str] = None
    checks: list = field(default_factory=list)
    uniques: list = field(default_factory=list)  # (constraint name or None, [columns])
    indexes: list = field(default_factory=list)  # explicit CREATE INDEX only
    foreign_keys: list = field(default_factory=list)
    row_count: int = 0
    rowid_name: Optional[str] = None  # how to address the rowid, if the table has one
    parse_error: Optional[str] = None

    def column(self, name: str) -> Optional[Column]:
        low = name.lower()
        for col in self.columns:
            if col.name.lower() == low:
                return col
        return None

    @property
    def stored_columns(self) -> list:
        """Columns whose values are read from SQLite and loaded (generated ones excluded)."""
        return [c for c in self.columns if not c.is_generated]


@dataclass
class SourceCatalog:
    name: str
    path: str
    size: int = 0
    page_size: int = 0
    page_count: int = 0
    freelist_count: int = 0
    journal_mode: str = ""
    encoding: str = ""
    user_version: int = 0
    tables: list = field(default_factory=list)
    views: list = field(default_factory=list)  # (name, sql)
    triggers: list = field(default_factory=list)  # (name, table, sql)
    virtual_tables: list = field(default_factory=list)  # (name, sql)
    shadow_tables: list = field(default_factory=list)
    sequences: dict = field(default_factory=dict)

    def table(self, name: str) -> Optional[Table]:
        low = name.lower()
        for t in self.tables:
            if t.name.lower() == low:
                return t
        return None


def _rowid_name(columns: list) -> Optional[str]:
    names = {c.name.lower() for c in columns}
    for candidate in ("rowid", "_rowid_", "oid"):
        if candidate not in names:
            return candidate
    return None


def read_catalog(con: sqlite3.Connection, name: str, path: Path, count_rows: bool = True) -> SourceCatalog:
    """Read the structure (and optionally row counts) of an open SQLite database."""
    try:
        return _read_catalog(con, name, Path(path), count_rows)
    except sqlite3.DatabaseError as exc:
        raise describe_sqlite_error(Path(path), exc) from None


def _read_catalog(con: sqlite3.Connection, name: str, path: Path, count_rows: bool) -> SourceCatalog:
    one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    cat = SourceCatalog(name=name, path=str(path), size=path.stat().st_size,
                        page_size=one("PRAGMA page_size"), page_count=one("PRAGMA page_count"),
                        freelist_count=one("PRAGMA freelist_count"), journal_mode=one("PRAGMA journal_mode"),
                        encoding=one("PRAGMA encoding"), user_version=one("PRAGMA user_version"))
    kinds = {}
    try:
        for row in con.execute("SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'"):
            kinds[row[0]] = (row[1], bool(row[2]), bool(row[3]))
    except sqlite3.OperationalError:  # SQLite before 3.37: fall back to parsing
        pass
    master = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall()
    index_sql = {n: s for t, n, _, s in master if t == "index"}
    if "sqlite_sequence" in {n for t, n, _, _ in master if t == "table"}:
        cat.sequences = {r[0]: r[1] for r in con.execute("SELECT name, seq FROM sqlite_sequence")}
    for typ, obj, tbl, sql in master:
        if typ == "view":
            cat.views.append((obj, sql))
        elif typ == "trigger":
            cat.triggers.append((obj, tbl, sql))
        elif typ != "table" or obj in INTERNAL_TABLES or obj.startswith("sqlite_"):
            continue
        elif (sql or "").upper().lstrip().startswith("CREATE VIRTUAL"):
            cat.virtual_tables.append((obj, sql))
        elif kinds.get(obj, ("table",))[0] == "shadow":
            cat.shadow_tables.append(obj)
        else:
            cat.tables.append(_read_table(con, obj, sql, kinds.get(obj), index_sql, cat.sequences))
    # Shadow tables of virtual tables on SQLite < 3.37 (no table_list): name prefix.
    vnames = [v[0] for v in cat.virtual_tables]
    if not kinds and vnames:
        keep = []
        for t in cat.tables:
            if any(t.name.startswith(v + "_") for v in vnames):
                cat.shadow_tables.append(t.name)
            else:
                keep.append(t)
        cat.tables = keep
    if count_rows:
        for t in cat.tables:
            t.row_count = one(f"SELECT count(*) FROM {qi(t.name)}")
    return cat


def _read_table(con, name, sql, kind, index_sql, sequences) -> Table:
    try:
        parsed = sqlite_sql.parse_create_table(sql)
        parse_error = None
    except (sqlite_sql.SqlSyntaxError, StopIteration, IndexError) as exc:
        parsed = sqlite_sql.ParsedTable(name=name)
        parse_error = f"could not parse CREATE TABLE ({exc}); CHECK constraints and generated columns unread"
    columns = []
    for cid, cname, ctype, notnull, dflt, pk, hidden in con.execute(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?)", (name,)):
        pc = parsed.column(cname)
        columns.append(Column(name=cname, declared_type=ctype or "", notnull=bool(notnull), default=dflt, pk=pk,
                              hidden=hidden, generated=pc.generated if pc else None,
                              generated_stored=pc.generated_stored if pc else False,
                              collation=pc.collation if pc else None, checks=list(pc.checks) if pc else []))
    without_rowid = kind[1] if kind else parsed.without_rowid
    strict = kind[2] if kind else parsed.strict
    pk = [c.name for c in sorted((c for c in columns if c.pk), key=lambda c: c.pk)]
    rowid_alias = None
    if not without_rowid and len(pk) == 1 and pk[0] and columns[[c.name for c in columns].index(pk[0])].declared_type.upper() == "INTEGER":
        rowid_alias = pk[0]
    table = Table(name=name, sql=sql, columns=columns, without_rowid=without_rowid, strict=strict,
                  autoincrement=any(c.autoincrement for c in parsed.columns) or name in sequences,
                  rowid_alias=rowid_alias, pk=pk, pk_name=parsed.pk_name, checks=list(parsed.checks),
                  parse_error=parse_error)
    table.rowid_name = None if without_rowid else (rowid_alias or _rowid_name(columns))
    named_uniques = {tuple(c.lower() for c in cols): cname for cname, cols in parsed.uniques}
    for _, iname, unique, origin, partial in con.execute(
            "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?)", (name,)):
        info = con.execute("SELECT seqno, cid, name, desc, coll, key FROM pragma_index_xinfo(?) ORDER BY seqno",
                           (iname,)).fetchall()
        keys = [r for r in info if r[5]]
        cols = [None if r[1] == -2 else (rowid_alias or "rowid") if r[1] == -1 else r[2] for r in keys]
        if origin == "pk":
            continue
        if origin == "u":
            cname = named_uniques.get(tuple(c.lower() for c in cols if c))
            table.uniques.append((cname, cols, iname))
            continue
        idx = Index(name=iname, unique=bool(unique), origin=origin, partial=bool(partial), columns=cols,
                    parts=list(cols), desc=[bool(r[3]) for r in keys], collations=[r[4] for r in keys],
                    sql=index_sql.get(iname))
        if idx.sql and (idx.partial or idx.has_expressions):
            try:
                parsed_idx = sqlite_sql.parse_create_index(idx.sql)
                idx.parts = parsed_idx.parts
                idx.part_tokens = parsed_idx.part_tokens
                idx.where = parsed_idx.where
                idx.where_tokens = parsed_idx.where_tokens
            except (sqlite_sql.SqlSyntaxError, StopIteration, IndexError):
                idx.where = "(unparsed)"
        table.indexes.append(idx)
    # sqlite_autoindex_<table>_<N> numbers UNIQUE constraints in declaration order.
    table.uniques = [(cn, cols) for cn, cols, _ in sorted(
        table.uniques, key=lambda u: int(u[2].rsplit("_", 1)[-1]) if u[2].rsplit("_", 1)[-1].isdigit() else 0)]
    order = {n: k for k, n in enumerate(index_sql)}
    table.indexes.sort(key=lambda ix: order.get(ix.name, len(order)))
    fks: dict[int, ForeignKey] = {}
    for fid, seq, ref, frm, to, on_update, on_delete, match in con.execute(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete, match FROM pragma_foreign_key_list(?) "
            "ORDER BY id, seq", (name,)):
        fk = fks.setdefault(fid, ForeignKey(id=fid, columns=[], ref_table=ref, ref_columns=[], on_update=on_update,
                                            on_delete=on_delete, match=match))
        fk.columns.append(frm)
        fk.ref_columns.append(to)
    table.foreign_keys = list(fks.values())
    return table


def resolve_fk_targets(cat: SourceCatalog) -> None:
    """Fill in parent key columns of foreign keys that name only the parent table."""
    for t in cat.tables:
        for fk in t.foreign_keys:
            if all(c is None for c in fk.ref_columns):
                parent = cat.table(fk.ref_table)
                if parent is not None and parent.pk:
                    fk.ref_columns = list(parent.pk)
