"""The migration plan: every decision about where each table, column, key and index goes.

`build_plan` turns the sources' catalogs and data profiles into a `Plan`; `ddl` renders it
as unified_schema.sql; the schema step saves it as plan.json beside the SQL, and the run and
validate steps read it back. The conflict policy is fixed and stated in every plan: each
source gets its own PostgreSQL schema named after the source, so same-named tables from
different files (``mingus.users`` and ``instance.users``) never mix.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .catalog import SourceCatalog, Table
from .ddl_names import NameSpace, quote_ident, schema_name
from .profile import TableProfile
from .translate import Translator, Untranslatable, translate_default
from .typemap import ColumnType, choose_type
from .sqlite_sql import SqlSyntaxError, parse_create_view

POLICY = ("one PostgreSQL schema per source, named after the source: tables with the same name in "
          "different sources become <source>.<table> and are never merged")
UUID_EXTENSION = "uuid-ossp"
PLAN_VERSION = 1


@dataclass
class ColumnPlan:
    source: str
    target: str
    declared: str
    pg_type: str
    kind: str
    params: dict = field(default_factory=dict)
    notnull: bool = False
    default: Optional[str] = None
    generated: Optional[str] = None
    identity: bool = False
    reason: str = ""
    fast: dict = field(default_factory=dict)  # census results: guard, nonull, plain, float17, ts19, ts26 (see census.census)
    decisions: dict = field(default_factory=dict)  # proposed (see decisions); the file's are the ones that count


@dataclass
class ConstraintPlan:
    name: str
    kind: str  # primary, unique, check
    columns: list = field(default_factory=list)
    expr: Optional[str] = None
    original: str = ""
    status: str = "ok"  # ok | skipped
    note: str = ""


@dataclass
class IndexPlan:
    name: str
    unique: bool
    definition: str  # "(cols) WHERE ..." part after the table name
    original: str = ""
    status: str = "ok"
    note: str = ""


@dataclass
class ForeignKeyPlan:
    name: str
    columns: list
    ref_table: str  # source table name of the parent
    ref_target: str
    ref_columns: list
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"
    source_columns: list = field(default_factory=list)
    source_ref_columns: list = field(default_factory=list)
    status: str = "ok"
    note: str = ""


@dataclass
class TablePlan:
    source: str
    table: str
    schema: str
    target: str
    columns: list = field(default_factory=list)
    constraints: list = field(default_factory=list)
    indexes: list = field(default_factory=list)
    foreign_keys: list = field(default_factory=list)
    rowid_name: Optional[str] = None
    rowid_alias: Optional[str] = None
    without_rowid: bool = False
    strict: bool = False
    pk_source: list = field(default_factory=list)
    row_count: int = 0
    copy_bytes_per_row: float = 0.0  # measured by the schema step's census
    sequence_floor: Optional[int] = None
    notes: list = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.source}.{self.table}"

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.target)}"

    def column(self, source_name: str) -> Optional[ColumnPlan]:
        low = source_name.lower()
        return next((c for c in self.columns if c.source.lower() == low), None)

    @property
    def primary_key(self) -> Optional[ConstraintPlan]:
        return next((c for c in self.constraints if c.kind == "primary" and c.status == "ok"), None)


@dataclass
class ViewPlan:
    source: str
    name: str
    schema: str
    target: str
    sql: Optional[str]
    original: str
    status: str = "ok"
    note: str = ""


@dataclass
class Plan:
    policy: str = POLICY
    version: int = PLAN_VERSION
    sources: dict = field(default_factory=dict)  # name -> {path, schema, identity}
    tables: list = field(default_factory=list)
    views: list = field(default_factory=list)
    not_migrated: list = field(default_factory=list)  # {source, kind, name, reason, sql}
    conflicts: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    extensions: list = field(default_factory=lambda: [UUID_EXTENSION])
    verified_against_target: bool = False

    def table(self, source: str, table: str) -> Optional[TablePlan]:
        return next((t for t in self.tables if t.source == source and t.table == table), None)

    @property
    def schemas(self) -> list[str]:
        return [s["schema"] for s in self.sources.values()]

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        tables = []
        for t in data["tables"]:
            t = dict(t)
            t["columns"] = [ColumnPlan(**c) for c in t["columns"]]
            t["constraints"] = [ConstraintPlan(**c) for c in t["constraints"]]
            t["indexes"] = [IndexPlan(**i) for i in t["indexes"]]
            t["foreign_keys"] = [ForeignKeyPlan(**f) for f in t["foreign_keys"]]
            tables.append(TablePlan(**t))
        data = dict(data)
        data["tables"] = tables
        data["views"] = [ViewPlan(**v) for v in data["views"]]
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "Plan":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _shape(t: Table) -> list:
    return [(c.name.lower(), c.declared_type.upper(), c.notnull, c.pk) for c in t.columns]


def find_conflicts(catalogs: list[SourceCatalog]) -> list[dict]:
    """Tables whose name appears in more than one source, and whether their shapes match."""
    seen: dict[str, list] = {}
    for cat in catalogs:
        for t in cat.tables:
            seen.setdefault(t.name.lower(), []).append((cat.name, t))
    out = []
    for name, holders in sorted(seen.items()):
        if len(holders) < 2:
            continue
        shapes = {json.dumps(_shape(t)) for _, t in holders}
        identical = len(shapes) == 1
        out.append({
            "table": holders[0][1].name,
            "sources": [s for s, _ in holders],
            "kind": "identical shape" if identical else "different shapes",
            "columns": {s: [f"{c.name} {c.declared_type}".strip() for c in t.columns] for s, t in holders},
            "resolution": "kept apart: " + ", ".join(f"{schema_name(s)}.{t.name}" for s, t in holders),
        })
    return out


def build_plan(catalogs: list[SourceCatalog], profiles: dict, identities: dict,
               uuid_unique_ok: Optional[Callable[[str, str, str], bool]] = None) -> Plan:
    """Decide the target of everything in the sources.

    `profiles` maps (source, table) to `TableProfile`; `identities` maps source name to file
    identity; `uuid_unique_ok(source, table, column)` says whether a unique text column stays
    unique once its UUID spellings are normalised (None: assume it does).
    """
    plan = Plan()
    used_schemas: set[str] = set()
    for cat in catalogs:
        schema = schema_name(cat.name)
        base, k = schema, 1
        while schema in used_schemas:
            k += 1
            schema = f"{base}_{k}"
        used_schemas.add(schema)
        plan.sources[cat.name] = {"path": cat.path, "schema": schema, "identity": identities.get(cat.name, {})}
    plan.conflicts = find_conflicts(catalogs)
    for cat in catalogs:
        schema = plan.sources[cat.name]["schema"]
        names = NameSpace()
        table_plans = {}
        for t in cat.tables:
            tp = _plan_table(cat, t, schema, names, profiles.get((cat.name, t.name)))
            table_plans[t.name] = tp
            plan.tables.append(tp)
        _decide_uuids(cat, table_plans, profiles, uuid_unique_ok)
        for t in cat.tables:
            tp = table_plans[t.name]
            _plan_defaults_checks_generated(t, tp)
            _plan_indexes(t, tp, names)
        for t in cat.tables:
            _plan_foreign_keys(cat, t, table_plans, names)
        for vname, vsql in cat.views:
            plan.views.append(_plan_view(cat, vname, vsql, schema, names, table_plans))
        for name, tbl, sql in cat.triggers:
            plan.not_migrated.append({"source": cat.name, "kind": "trigger", "name": name, "table": tbl, "sql": sql,
                                      "reason": "SQLite triggers are not translated; re-create as a PL/pgSQL "
                                                "trigger (or in the application) if the behaviour is needed"})
        for name, sql in cat.virtual_tables:
            plan.not_migrated.append({"source": cat.name, "kind": "virtual table", "name": name, "sql": sql,
                                      "reason": "virtual tables (FTS, R*Tree, ...) have no PostgreSQL equivalent; "
                                                "rebuild with PostgreSQL full-text search or an extension"})
        for name in cat.shadow_tables:
            plan.not_migrated.append({"source": cat.name, "kind": "shadow table", "name": name, "sql": "",
                                      "reason": "internal table of a virtual table"})
    return plan


def _plan_table(cat: SourceCatalog, t: Table, schema: str, names: NameSpace, prof: Optional[TableProfile]) -> TablePlan:
    tp = TablePlan(source=cat.name, table=t.name, schema=schema, target=names.claim(t.name),
                   rowid_name=t.rowid_name, rowid_alias=t.rowid_alias, without_rowid=t.without_rowid,
                   strict=t.strict, pk_source=list(t.pk), row_count=t.row_count)
    if tp.target != t.name:
        tp.notes.append(f"table name {t.name!r} is longer than PostgreSQL allows: named {tp.target!r}")
    if t.parse_error:
        tp.notes.append(t.parse_error)
    col_names = NameSpace()
    for col in t.columns:
        cp = prof.columns.get(col.name) if prof else None
        ctype: ColumnType = choose_type(col, cp)
        target = col_names.claim(col.name)
        plan_col = ColumnPlan(source=col.name, target=target, declared=col.declared_type, pg_type=ctype.pg_type,
                              kind=ctype.kind, params=dict(ctype.params), notnull=col.notnull or col.pk > 0,
                              reason=ctype.reason, decisions=dict(ctype.decisions))
        if target != col.name:
            plan_col.reason = (plan_col.reason + "; " if plan_col.reason else "") + f"renamed from {col.name!r} (too long)"
        if cp is not None and cp.with_nul and "nul" not in plan_col.decisions:
            tp.notes.append(f"column {col.name}: {cp.with_nul} values hold NUL characters, which PostgreSQL "
                            f"{plan_col.pg_type} cannot store; those rows will be rejected")
        if col.collation and col.collation.upper() != "BINARY":
            tp.notes.append(f"column {col.name}: COLLATE {col.collation} has no direct equivalent; PostgreSQL "
                            f"compares it case-sensitively (consider citext or lower() indexes)")
        tp.columns.append(plan_col)
    if t.pk:
        pk_cols = [tp.column(c).target for c in t.pk]
        tp.constraints.append(ConstraintPlan(name=names.claim(t.pk_name or f"{tp.target}_pkey"), kind="primary",
                                             columns=pk_cols, original=f"PRIMARY KEY ({', '.join(t.pk)})"))
        if cp_nulls := _pk_nulls(t, prof):
            tp.notes.append(f"{cp_nulls} rows have NULL in the primary key (SQLite allows it outside INTEGER "
                            f"PRIMARY KEY); PostgreSQL does not, so they will be rejected")
        if len(t.pk) == 1:
            pkc = tp.column(t.pk[0])
            if pkc.kind == "int" and (t.rowid_alias or t.autoincrement):
                pkc.identity = True
                if t.autoincrement:
                    tp.sequence_floor = cat.sequences.get(t.name)
    for cname, cols in t.uniques:
        tcols = [tp.column(c).target for c in cols if c]
        tp.constraints.append(ConstraintPlan(name=names.claim(cname or f"{tp.target}_{'_'.join(tcols)}_key"),
                                             kind="unique", columns=tcols, original=f"UNIQUE ({', '.join(cols)})"))
    return tp


def _pk_nulls(t: Table, prof: Optional[TableProfile]) -> int:
    if prof is None or t.rowid_alias:
        return 0
    return max((prof.columns[c].nulls for c in t.pk if c in prof.columns), default=0)


def _decide_uuids(cat: SourceCatalog, plans: dict, profiles: dict, uuid_unique_ok) -> None:
    """Text columns holding only UUIDs become uuid, together with every column linked by a foreign key.

    A foreign key needs equal types on both ends, so the decision is made per group of linked
    columns: all of them become uuid, or none.
    """
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for t in cat.tables:
        for c in t.columns:
            find((t.name, c.name))
        for fk in t.foreign_keys:
            ref = cat.table(fk.ref_table)
            if ref is None:
                continue
            for a, b in zip(fk.columns, fk.ref_columns):
                if b is None or ref.column(b) is None:
                    continue
                parent[find((t.name, a))] = find((ref.name, ref.column(b).name))
    groups: dict = {}
    for t in cat.tables:
        for c in t.columns:
            groups.setdefault(find((t.name, c.name)), []).append((t, c))
    for members in groups.values():
        has_values = False
        ok = True
        for t, c in members:
            cp_plan = plans[t.name].column(c.name)
            prof = profiles.get((cat.name, t.name))
            cp = prof.columns.get(c.name) if prof else None
            if cp_plan.kind not in ("text", "uuid") or cp is None:
                ok = False
                break
            if cp.non_null:
                has_values = True
                if cp.uuids != cp.non_null:
                    ok = False
                    break
            if cp.uuid_spellings > 1 and uuid_unique_ok is not None and _is_unique(t, c) \
                    and not uuid_unique_ok(cat.name, t.name, c.name):
                ok = False
                plans[t.name].notes.append(f"column {c.name}: the same UUID is stored in two spellings, so "
                                           f"normalising would break its uniqueness; kept as text")
                break
        if not (ok and has_values):
            continue
        for t, c in members:
            cp_plan = plans[t.name].column(c.name)
            if cp_plan.kind == "uuid":
                continue
            prof = profiles.get((cat.name, t.name))
            cprof = prof.columns.get(c.name) if prof else None
            declared = c.declared_type or "untyped"
            cp_plan.pg_type, cp_plan.kind, cp_plan.params, cp_plan.decisions = "uuid", "uuid", {}, {}
            if cprof is not None and cprof.non_null:
                both = " (spelled with and without hyphens; stored normalised)" if cprof.uuid_spellings > 1 else ""
                cp_plan.reason = f"declared {declared}; every value is a UUID{both}: uuid"
            else:
                cp_plan.reason = f"declared {declared}; linked by a foreign key to UUID values: uuid"


def _is_unique(t: Table, c) -> bool:
    if t.pk == [c.name]:
        return True
    return any(cols == [c.name] for _, cols in t.uniques)


def _column_translator(tp: TablePlan, now_kind: str = "timestamp") -> Translator:
    def resolve(name):
        col = tp.column(name)
        return quote_ident(col.target) if col else None

    def kinds(name):
        col = tp.column(name)
        return col.kind if col else None

    return Translator(resolve=resolve, kinds=kinds, strings_for_unknown=True, now_kind=now_kind)


def _plan_defaults_checks_generated(t: Table, tp: TablePlan) -> None:
    for col in t.columns:
        cp = tp.column(col.name)
        if col.default is not None and not col.is_generated:
            try:
                cp.default = translate_default(col.default, cp.kind)
            except (Untranslatable, SqlSyntaxError) as exc:
                tp.notes.append(f"column {col.name}: DEFAULT {col.default} not translated ({exc}); no default")
        if col.is_generated:
            expr = col.generated
            if expr is None:
                tp.notes.append(f"column {col.name}: generated column whose expression could not be read; "
                                f"loaded as a plain column with SQLite's computed values")
                continue
            try:
                cp.generated = _column_translator(tp).sql(expr)
                if not col.generated_stored:
                    tp.notes.append(f"column {col.name}: VIRTUAL generated column becomes STORED "
                                    f"(PostgreSQL 15 has only stored generated columns)")
            except Untranslatable as exc:
                tp.notes.append(f"column {col.name}: generated expression {expr} not translated ({exc}); "
                                f"loaded as a plain column with SQLite's computed values")
    n = 0
    checks = [(col.name, name, sql) for col in t.columns for name, sql in col.checks] + \
             [(None, name, sql) for name, sql in t.checks]
    names = {c.name.lower() for c in tp.constraints}
    for colname, name, sql in checks:
        n += 1
        base = name or (f"{tp.target}_{tp.column(colname).target}_check" if colname else f"{tp.target}_check{n}")
        cname = base
        k = 1
        while cname.lower() in names:
            k += 1
            cname = f"{base}{k}"
        names.add(cname.lower())
        cp = ConstraintPlan(name=cname, kind="check", original=f"CHECK ({sql})")
        try:
            cp.expr = _column_translator(tp).sql(sql)
        except Untranslatable as exc:
            cp.status, cp.note = "skipped", f"not translated: {exc}"
        tp.constraints.append(cp)


def _plan_indexes(t: Table, tp: TablePlan, names: NameSpace) -> None:
    tr = _column_translator(tp)
    for idx in t.indexes:
        plan = IndexPlan(name=names.claim(idx.name), unique=idx.unique, definition="", original=idx.sql or "")
        try:
            parts = []
            for k, col in enumerate(idx.columns):
                if col is not None:
                    cp = tp.column(col)
                    if cp is None:
                        raise Untranslatable(f"indexes the rowid, which does not exist in PostgreSQL")
                    text = quote_ident(cp.target)
                else:
                    if idx.part_tokens is None:
                        raise Untranslatable("expression could not be read")
                    text = "(" + tr.tokens(_strip_order(idx.part_tokens[k])) + ")"
                coll = idx.collations[k] if k < len(idx.collations) else None
                if coll and coll.upper() not in ("BINARY",):
                    raise Untranslatable(f"COLLATE {coll}")
                parts.append(text + (" DESC" if idx.desc[k] else ""))
            definition = "(" + ", ".join(parts) + ")"
            if idx.partial:
                if not idx.where_tokens:
                    raise Untranslatable("partial-index condition could not be read")
                definition += " WHERE " + tr.tokens(idx.where_tokens)
            plan.definition = definition
        except Untranslatable as exc:
            plan.status, plan.note = "skipped", f"not translated: {exc}"
        tp.indexes.append(plan)


def _strip_order(tokens: list) -> list:
    """An index part without its trailing ASC/DESC/COLLATE (they are read from the PRAGMA)."""
    toks = list(tokens)
    while toks and toks[-1].kind == "ident" and toks[-1].upper in ("ASC", "DESC"):
        toks.pop()
    if len(toks) >= 2 and toks[-2].kind == "ident" and toks[-2].upper == "COLLATE":
        toks = toks[:-2]
    return toks


def _plan_foreign_keys(cat: SourceCatalog, t: Table, plans: dict, names: NameSpace) -> None:
    tp = plans[t.name]
    for fk in t.foreign_keys:
        parent_t = cat.table(fk.ref_table)
        ref_cols = list(fk.ref_columns)
        if parent_t is not None and all(c is None for c in ref_cols):
            ref_cols = list(parent_t.pk)
        cols = [tp.column(c).target for c in fk.columns]
        base = f"{tp.target}_{'_'.join(cols)}_fkey"
        plan = ForeignKeyPlan(name=names.claim(base), columns=cols, ref_table=fk.ref_table, ref_target="",
                              ref_columns=[], on_delete=fk.on_delete, on_update=fk.on_update,
                              source_columns=list(fk.columns), source_ref_columns=ref_cols)
        if parent_t is None or parent_t.name not in plans:
            plan.status, plan.note = "skipped", f"parent table {fk.ref_table} does not exist in {cat.name}"
            tp.foreign_keys.append(plan)
            continue
        pp = plans[parent_t.name]
        plan.ref_table = parent_t.name
        plan.ref_target = pp.target
        missing = [c for c in ref_cols if c is None or pp.column(c) is None]
        if missing or len(ref_cols) != len(cols):
            plan.status, plan.note = "skipped", f"parent columns {ref_cols} do not exist in {parent_t.name}"
            tp.foreign_keys.append(plan)
            continue
        plan.ref_columns = [pp.column(c).target for c in ref_cols]
        keys = [set(c.columns) for c in pp.constraints if c.kind in ("primary", "unique") and c.status == "ok"]
        if set(plan.ref_columns) not in keys:
            plan.status = "skipped"
            plan.note = (f"{parent_t.name}({', '.join(ref_cols)}) is not a primary key or unique; PostgreSQL "
                         f"requires one for a foreign key (SQLite reports 'foreign key mismatch' on use)")
        else:
            for c, r in zip(fk.columns, ref_cols):
                ck, rk = tp.column(c).kind, pp.column(r).kind
                if ck != rk and {ck, rk} != {"int", "numeric"}:
                    plan.status = "skipped"
                    plan.note = (f"{t.name}.{c} ({tp.column(c).pg_type}) and {parent_t.name}.{r} "
                                 f"({pp.column(r).pg_type}) have different types")
        tp.foreign_keys.append(plan)


def _plan_view(cat: SourceCatalog, name: str, sql: str, schema: str, names: NameSpace, plans: dict) -> ViewPlan:
    vp = ViewPlan(source=cat.name, name=name, schema=schema, target=names.claim(name), sql=None, original=sql)
    columns, kinds = {}, {}
    for tp in plans.values():
        for c in tp.columns:
            columns.setdefault(c.source.lower(), quote_ident(c.target))
            kinds.setdefault(c.source.lower(), c.kind)
    tables = {tp.table.lower(): tp.qualified for tp in plans.values()}

    def resolve(n):
        return tables.get(n.lower()) or columns.get(n.lower())

    try:
        vname, cols, select = parse_create_view(sql)
        body = Translator(resolve=resolve, kinds=lambda n: None if n.lower() in tables else kinds.get(n.lower())).tokens(select)
        collist = f" ({', '.join(quote_ident(c) for c in cols)})" if cols else ""
        vp.sql = f"CREATE VIEW {quote_ident(schema)}.{quote_ident(vp.target)}{collist} AS {body}"
    except (Untranslatable, SqlSyntaxError, StopIteration, IndexError) as exc:
        vp.status, vp.note = "skipped", f"not translated: {exc}"
    return vp
