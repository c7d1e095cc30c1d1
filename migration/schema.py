"""The schema step: from the sources to a reviewed unified_schema.sql, and onto the target.

`prepare` reads every source (structure and data profile), builds the plan, tries every
statement against the target inside a transaction that is rolled back (so what PostgreSQL
refuses is commented out with its reason before anyone reviews it), and writes
unified_schema.sql and plan.json into the workdir. `apply_statements` creates the objects and
`verify` checks the catalogs for every object the file names.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Optional

import psycopg

from . import ddl
from .catalog import qi, read_catalog, resolve_fk_targets
from .ddl_names import fit_name, quote_ident
from .plan import UUID_EXTENSION, Plan, build_plan
from .census import census
from .profile import TableProfile, early_pool, json_available, profile_tables
from .progress import Reporter
from .reports import SchemaReport, end_step, utc_now
from .sources import file_identity, open_source, schema_sha256
from .target import CONTROL_SCHEMA, connect, control_ddl, target_error, error_text, existing_constraints, \
    owned_sequences, record_created, \
    existing_indexes, existing_views, target_columns

SCHEMA_FILE = "unified_schema.sql"
PROFILE_VERSION = 3  # bump when ColumnProfile counts something new: older caches are profiled again
PLAN_FILE = "plan.json"


def read_sources(sources: dict, busy_timeout: float, reporter: Optional[Reporter] = None,
                 workdir: Optional[Path] = None, profile: bool = True):
    """(catalogs, profiles, identities) of all sources; profiles are cached per file identity."""
    with early_pool(list(sources.values()) if profile else []) as pool:
        return _read_sources(sources, busy_timeout, reporter, workdir, profile, pool)


def _read_sources(sources: dict, busy_timeout: float, reporter, workdir, profile: bool, pool):
    catalogs, profiles, identities = [], {}, {}
    for name, path in sources.items():
        path = Path(path)
        con = open_source(path, busy_timeout=busy_timeout)
        if reporter:
            reporter.watch(con)
        try:
            ident = {**file_identity(path), "schema_sha256": schema_sha256(path, busy_timeout)}
            identities[name] = ident
            cat = read_catalog(con, name, path)
            resolve_fk_targets(cat)
            catalogs.append(cat)
            if not profile:
                continue
            cache = _load_profile_cache(workdir, name, ident)
            has_json = json_available(con)
            todo = []
            for t in cat.tables:
                if t.name in cache:
                    profiles[(name, t.name)] = TableProfile.from_dict(cache[t.name])
                else:
                    todo.append(t)
            for t, prof in profile_tables(con, path, todo, has_json, busy_timeout, reporter, pool).items():
                profiles[(name, t)] = prof
            _save_profile_cache(workdir, name, ident, {t.name: profiles[(name, t.name)].to_dict() for t in cat.tables})
        finally:
            con.close()
    return catalogs, profiles, identities


def _cache_path(workdir: Optional[Path], name: str) -> Optional[Path]:
    return Path(workdir) / "cache" / f"profile-{name}.json" if workdir else None


def _load_profile_cache(workdir, name, ident) -> dict:
    path = _cache_path(workdir, name)
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    ok = data.get("identity") == ident and data.get("version") == PROFILE_VERSION
    return data["tables"] if ok else {}


def _save_profile_cache(workdir, name, ident, tables) -> None:
    path = _cache_path(workdir, name)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"identity": ident, "version": PROFILE_VERSION, "tables": tables}))


def _uuid_unique_checker(sources: dict, busy_timeout: float):
    def check(source: str, table: str, column: str) -> bool:
        con = open_source(Path(sources[source]), busy_timeout=busy_timeout)
        try:
            c = qi(column)
            a, b = con.execute(f"SELECT count(DISTINCT lower(replace({c}, '-', ''))), count(DISTINCT {c}) "
                               f"FROM {qi(table)}").fetchone()
            return a == b
        finally:
            con.close()
    return check


def try_statements(plan: Plan, url: str, reporter: Optional[Reporter] = None) -> list[str]:
    """Try every statement on the target in a rolled-back transaction; mark what fails.

    Returns notes about what was changed in the plan. The objects are created under
    throwaway schema names, so existing data in the target is never touched.
    """
    notes: list[str] = []
    conn = connect(url, autocommit=True, purpose="schema check")
    suffix = secrets.token_hex(3)
    smap = lambda s: fit_name(f"pgm_check_{suffix}_{s}")  # noqa: E731
    try:
        with conn.transaction(force_rollback=True):
            for ext in list(plan.extensions):
                if not _try(conn, f'CREATE EXTENSION IF NOT EXISTS "{ext}"'):
                    plan.extensions.remove(ext)
                    notes.append(f"extension {ext} is not available on the target; the uuid type itself is "
                                 f"built in, but uuid_generate_v4() will be missing")
            for src in plan.sources.values():
                conn.execute(f"CREATE SCHEMA {quote_ident(smap(src['schema']))}")
            for tp in plan.tables:
                q = f"{quote_ident(smap(tp.schema))}.{quote_ident(tp.target)}"
                cols = []
                for c in tp.columns:
                    cols.append(f"{quote_ident(c.target)} {c.pg_type}" + (" NOT NULL" if c.notnull else ""))
                err = _try(conn, f"CREATE TABLE {q} ({', '.join(cols)})", want_error=True)
                if err:
                    tp.notes.append(f"PostgreSQL refused the table: {err}")
                    notes.append(f"{tp.key}: PostgreSQL refused the table: {err}")
                    continue
                for c in tp.columns:
                    if c.default is not None and not c.identity:
                        err = _try(conn, f"ALTER TABLE {q} ALTER COLUMN {quote_ident(c.target)} SET DEFAULT {c.default}",
                                   want_error=True)
                        if err:
                            tp.notes.append(f"column {c.source}: DEFAULT {c.default} refused by PostgreSQL ({err}); no default")
                            c.default = None
                    if c.generated:
                        col = quote_ident(c.target)
                        err = _try(conn, f"ALTER TABLE {q} DROP COLUMN {col}; ALTER TABLE {q} ADD COLUMN {col} "
                                         f"{c.pg_type} GENERATED ALWAYS AS ({c.generated}) STORED", want_error=True)
                        if err:
                            tp.notes.append(f"column {c.source}: generated expression refused by PostgreSQL ({err}); "
                                            f"loaded as a plain column with SQLite's computed values")
                            c.generated = None
                for con in tp.constraints:
                    if con.kind == "check" and con.status == "ok":
                        err = _try(conn, f"ALTER TABLE {q} ADD CONSTRAINT {quote_ident(con.name)} CHECK ({con.expr})",
                                   want_error=True)
                        if err:
                            con.status, con.note = "skipped", f"PostgreSQL refused it: {err}"
            for st in ddl.statements(plan, smap):
                if st.section in ("key", "index", "fk", "view"):
                    err = _try(conn, st.sql, want_error=True)
                    if err:
                        _mark_skipped(plan, st, f"PostgreSQL refused it: {err}")
    except psycopg.Error as exc:
        raise target_error(url, exc, "trying the schema") from None
    finally:
        conn.close()
    plan.verified_against_target = True
    return notes


def _try(conn, sql: str, want_error: bool = False):
    try:
        with conn.transaction():
            conn.execute(sql)
        return None if want_error else True
    except psycopg.Error as exc:
        if getattr(exc, "sqlstate", "")[:2] in ("08", "57"):
            raise
        return error_text(exc) if want_error else False


def _mark_skipped(plan: Plan, st: ddl.Statement, note: str) -> None:
    for tp in plan.tables:
        if tp.schema != st.schema or tp.target != st.table:
            continue
        for item in tp.constraints + tp.indexes + tp.foreign_keys:
            if item.name == st.object:
                item.status, item.note = "skipped", note
    for vp in plan.views:
        if vp.schema == st.schema and vp.target == st.object:
            vp.status, vp.note = "skipped", note


def prepare(sources: dict, workdir: Path, target_url: Optional[str], busy_timeout: float,
            reporter: Optional[Reporter] = None) -> tuple[Plan, str, list[str]]:
    """Build the plan, check it against the target if given, write unified_schema.sql and plan.json."""
    catalogs, profiles, identities = read_sources(sources, busy_timeout, reporter, workdir)
    plan = build_plan(catalogs, profiles, identities, _uuid_unique_checker(sources, busy_timeout))
    census(sources, plan, busy_timeout, reporter, profiles)
    notes = try_statements(plan, target_url, reporter) if target_url else []
    plan.notes.extend(notes)
    text = ddl.render_schema(plan)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / SCHEMA_FILE).write_text(text, encoding="utf-8")
    plan.save(workdir / PLAN_FILE)
    return plan, text, notes


def same_file_version(before: dict, now: dict) -> bool:
    """Whether two file identities (sources.file_identity) are the same version of a file."""
    keys = ("size", "change_counter", "wal_size")
    return all(before.get(k) == now.get(k) for k in keys)


def why_not_current(sources: dict, workdir: Path) -> str:
    """'' when the plan and unified_schema.sql in the workdir describe these sources' schema,
    else why not. The plan is bound to each source's schema (sources.schema_sha256: tables,
    columns, declared types, keys, indexes) and holds the type decisions; new rows change
    neither, so a live source being written does not void a reviewed schema."""
    plan_path, sql_path = workdir / PLAN_FILE, workdir / SCHEMA_FILE
    if not plan_path.exists() or not sql_path.exists():
        return f"no unified_schema.sql in {workdir}"
    plan = Plan.load(plan_path)
    if set(plan.sources) != set(sources):
        return f"unified_schema.sql was made from sources {sorted(plan.sources)}, not {sorted(sources)}"
    for name, path in sources.items():
        src = plan.sources[name]
        if Path(src["path"]).resolve() != Path(path).resolve():
            return f"unified_schema.sql was made from {src['path']} for {name}, not {path}"
        made_from = (src.get("identity") or {}).get("schema_sha256")
        if made_from != schema_sha256(Path(path)):
            return f"the schema of {name} ({path}) changed since unified_schema.sql was made"
    return ""


def current_plan(sources: dict, workdir: Path) -> Optional[tuple[Plan, str]]:
    """The plan and schema text in the workdir, if they describe these sources' schema."""
    if why_not_current(sources, workdir):
        return None
    return Plan.load(workdir / PLAN_FILE), (workdir / SCHEMA_FILE).read_text(encoding="utf-8")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ensure_control(conn, control: str = CONTROL_SCHEMA) -> None:
    with conn.transaction():
        for stmt in control_ddl(control):
            conn.execute(stmt)


def apply_statements(conn, statements: list, sections: tuple, control: str = CONTROL_SCHEMA,
                     schema_of=lambda s: s) -> list[str]:
    """Execute the statements of the given sections that do not exist yet; record what was created.

    Returns the statements that failed, with PostgreSQL's reason.
    """
    failed = []
    present_schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    ctl = quote_ident(control)
    for st in statements:
        if st.section not in sections:
            continue
        schema = schema_of(st.schema) if st.schema else ""
        try:
            with conn.transaction():
                if st.section in ("key", "fk") and _constraint_exists(conn, schema, st.object):
                    continue
                if st.section == "view" and conn.execute(
                        "SELECT 1 FROM pg_views WHERE schemaname = %s AND viewname = %s", (schema, st.object)).fetchone():
                    continue
                new = _new_object(conn, st, schema, present_schemas)
                conn.execute(st.sql)
                if new is not None:  # it did not exist before: the migration made it, rollback drops it
                    record_created(conn, control, *new)
                    if new[0] == "schema":
                        present_schemas.add(schema)
                    if new[0] == "table":
                        for seq in owned_sequences(conn, schema, st.object):
                            record_created(conn, control, "sequence", schema, seq, st.object)
        except psycopg.Error as exc:
            if getattr(exc, "sqlstate", "")[:2] in ("08", "57"):
                raise
            failed.append(f"{st.section} {st.schema}.{st.table} {st.object}: {error_text(exc)}")
    return failed


def _new_object(conn, st, schema: str, present_schemas: set):
    """(kind, schema, name, table) of the object `st` would create, or None if it exists already."""
    if st.section == "prelude":
        kind, _, name = st.object.partition(" ")
        if kind == "schema":
            return None if schema in present_schemas else ("schema", schema, schema, "")
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (name,)).fetchone():
            return None
        return ("extension", "", name, "")
    if st.section in ("key", "fk"):
        return ("constraint", schema, st.object, st.table)  # the caller skipped an existing one
    qualified = f"{quote_ident(schema)}.{quote_ident(st.object)}"
    if conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is not None:
        return None
    kind = {"table": "table", "view": "view", "index": "index"}.get(st.section, st.section)
    return (kind, schema, st.object, st.table if kind == "index" else "")


def _constraint_exists(conn, schema: str, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                        "WHERE n.nspname = %s AND c.conname = %s", (schema, name)).fetchone() is not None


def verify(conn, statements: list, plan: Optional[Plan] = None, schema_of=lambda s: s) -> dict:
    """Check the catalogs for every object the schema file names; report what is missing."""
    schemas = sorted({schema_of(st.schema) for st in statements if st.schema})
    cons = existing_constraints(conn, schemas)
    idx = existing_indexes(conn, schemas)
    views = existing_views(conn, schemas)
    exts = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
    nsp = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
    checked, missing, not_valid = 0, [], []
    for st in statements:
        schema = schema_of(st.schema) if st.schema else ""
        checked += 1
        if st.section == "prelude":
            ok = (st.object.split(" ", 1)[1] in exts) if st.object.startswith("extension ") else schema in nsp
        elif st.section == "table":
            cols = {c["name"]: c for c in target_columns(conn, schema, st.table)}
            ok = bool(cols)
            if ok and plan is not None:
                tp = next((t for t in plan.tables if t.schema == st.schema and t.target == st.table), None)
                if tp is not None:
                    for c in tp.columns:
                        checked += 1
                        if c.target not in cols:
                            missing.append(f"column {schema}.{st.table}.{c.target}")
                        elif (c.notnull or c.identity) and not cols[c.target]["notnull"]:
                            missing.append(f"NOT NULL on {schema}.{st.table}.{c.target}")
                    for c in tp.constraints:
                        if c.kind == "check" and c.status == "ok":
                            checked += 1
                            if (schema, c.name) not in cons:
                                missing.append(f"check constraint {schema}.{c.name} on {st.table}")
        elif st.section in ("key", "fk"):
            info = cons.get((schema, st.object))
            ok = info is not None
            if ok and not info["validated"]:
                not_valid.append(f"{schema}.{st.object}")
        elif st.section == "index":
            ok = (schema, st.object) in idx
        else:
            ok = (schema, st.object) in views
        if not ok:
            missing.append(f"{st.section} {schema}.{st.object}" + (f" on {st.table}" if st.table and st.table != st.object else ""))
    return {"checked": checked, "missing": missing, "not_valid": not_valid}


def schema_step(sources: dict, target_url: Optional[str], workdir: Path, apply: bool = False, progress=None,
                busy_timeout: float = 5.0, should_cancel=None) -> SchemaReport:
    """Generate unified_schema.sql (checked against the target when given); optionally apply it."""
    workdir = Path(workdir)
    report = SchemaReport()
    rep = Reporter("schema", progress, should_cancel, log_path=workdir / "logs" / "schema.log")
    rep.start(message="reading sources")
    plan, text, notes = prepare(sources, workdir, target_url, busy_timeout, rep)
    report.schema_sql = str(workdir / SCHEMA_FILE)
    report.schema_sha256 = sha256_text(text)
    report.plan = str(workdir / PLAN_FILE)
    report.policy = plan.policy
    report.verified_against_target = plan.verified_against_target
    report.artifacts += [report.schema_sql, report.plan]
    for tp in plan.tables:
        report.tables.append({"source": tp.source, "table": tp.table, "target": f"{tp.schema}.{tp.target}",
                              "rows": tp.row_count,
                              "types": {c.source: c.pg_type for c in tp.columns},
                              "decisions": {c.source: c.reason for c in tp.columns if c.reason}})
        report.notes += [f"{tp.key}: {n}" for n in tp.notes]
        for item in tp.constraints + tp.indexes + tp.foreign_keys:
            if item.status != "ok":
                report.warn(f"{tp.key}: not migrated: {getattr(item, 'original', '') or item.name} ({item.note})")
    for c in plan.conflicts:
        report.notes.append(f"conflict: {c['table']} in {', '.join(c['sources'])} ({c['kind']}); {c['resolution']}")
    for item in plan.not_migrated:
        if item["kind"] != "shadow table":
            report.warn(f"{item['source']}: {item['kind']} {item['name']} not migrated: {item['reason']}")
    for v in plan.views:
        if v.status != "ok":
            report.warn(f"{v.source}: view {v.name} not migrated: {v.note}")
    report.notes += notes
    if apply:
        if not target_url:
            from .errors import InputError
            raise InputError("schema --apply needs --target")
        statements = ddl.parse_schema_file(text)
        conn = connect(target_url, autocommit=True, purpose="schema")
        try:
            ensure_control(conn)
            with conn.transaction():
                conn.execute(f"INSERT INTO {CONTROL_SCHEMA}.runs (run_id, plan_sha256, status, finished_at) "
                             f"VALUES (%s, %s, 'schema applied', now())",
                             (f"schema-{utc_now()}-{secrets.token_hex(2)}", report.schema_sha256))
            failed = apply_statements(conn, statements, ("prelude", "table", "key", "index", "fk", "view"))
            for f in failed:
                report.problem(f"could not apply {f}")
            report.applied = True
            report.verification = verify(conn, statements, plan)
            present = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
            report.uuid_extension = UUID_EXTENSION in present
            for m in report.verification["missing"]:
                report.problem(f"missing after apply: {m}")
        except psycopg.Error as exc:
            raise target_error(target_url, exc, "applying the schema") from None
        finally:
            conn.close()
    return end_step(report, workdir, rep)
