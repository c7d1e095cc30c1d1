"""The validate step: is every source row in the target, exactly, and nothing else?

For every table: row counts; a checksum of every row, computed on both sides from the same
canonical text (`convert.canonical_field`: what PostgreSQL must hold for the SQLite value,
normalised exactly as the load normalised it); foreign keys checked in the target; and a set
of sample queries run on both sides. Rows the run rejected (``_pgmigrate.rejects``) are left
out of the source side.

Tables with a single integer key are compared in key ranges: each side reduces a range to a
count and an md5 in its own engine (SQLite's printf/group_concat, PostgreSQL's string_agg),
so no row crosses into Python unless its range differs. A range that differs is fetched from
both sides and compared row by row, value by value, and every difference is named by table,
key and column. Other tables are streamed from both sides in canonical-key order and merged.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Optional

import psycopg

from . import convert, ddl, decisions, fastpath
from .catalog import qi
from .ddl_names import quote_ident
from .errors import Cancelled, InputError, TargetError
from .plan import Plan, TablePlan
from .progress import Reporter
from .reports import ValidateReport, write_report
from .schema import PLAN_FILE, SCHEMA_FILE, current_plan
from .target import CONTROL_SCHEMA, connect, target_error, schema_exists, table_exists
from .workers import WorkContext, make_pool

RANGE_ROWS = 40_000  # rows per checksummed range, at most
RANGE_BYTES = 4 << 20  # canonical text per range, at most: bounds each worker's memory
TASK_RANGES = 8  # ranges per worker task
MAX_DIFFERENCES = 50  # named per table; the rest are counted


@dataclass
class TableCheck:
    """What a worker needs to compare one table (picklable)."""

    key: str
    source: str
    path: str
    table: str
    schema: str
    target: str
    columns: list  # fastpath.ColumnSpec, every compared column
    key_columns: list  # source names of the key (PK), [] when the table has none
    key_specs: list  # ColumnSpec of the key columns
    int_key: Optional[str] = None  # source name of a single integer key (range mode)
    rowid_name: Optional[str] = None
    control: str = CONTROL_SCHEMA
    has_control: bool = False

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.target)}"


# ---- helpers shared by the tasks ---------------------------------------------------------

def _exclusion(ctx: WorkContext, con, chk: TableCheck, alias: str = "") -> str:
    """SQL condition leaving out the rows the run rejected (a temp table on the SQLite side)."""
    pre = f"{alias}." if alias else ""
    if not chk.has_control:
        return "1"
    conn = ctx.pg()
    rows = conn.execute(f"SELECT src_rowid, src_key FROM {quote_ident(chk.control)}.rejects "
                        f"WHERE source = %s AND table_name = %s", (chk.source, chk.table)).fetchall()
    if not rows:
        return "1"
    if chk.rowid_name:
        con.execute("CREATE TEMP TABLE IF NOT EXISTS pgm_rejected (rid INTEGER PRIMARY KEY)")
        con.execute("DELETE FROM temp.pgm_rejected")
        con.executemany("INSERT OR IGNORE INTO temp.pgm_rejected VALUES (?)", [(r[0],) for r in rows if r[0] is not None])
        return f"{pre}{qi(chk.rowid_name)} NOT IN (SELECT rid FROM temp.pgm_rejected)"
    cols = ", ".join(f"k{i}" for i in range(len(chk.key_columns)))
    con.execute("DROP TABLE IF EXISTS temp.pgm_rejected")
    con.execute(f"CREATE TEMP TABLE pgm_rejected ({cols})")
    values = []
    for _, key in rows:
        key = key if isinstance(key, dict) else json.loads(key or "{}")
        values.append(tuple(_raw(key.get(k)) for k in chk.key_columns))
    con.executemany(f"INSERT INTO temp.pgm_rejected VALUES ({', '.join('?' for _ in chk.key_columns)})", values)
    keys = ", ".join(pre + qi(k) for k in chk.key_columns)
    return f"({keys}) NOT IN (SELECT {cols} FROM temp.pgm_rejected)"


def _raw(value):
    if isinstance(value, dict) and "$hex" in value:
        return bytes.fromhex(value["$hex"])
    if isinstance(value, dict) and "$float" in value:
        return float(value["$float"])
    return value


def _fields(line: str, specs: list) -> list:
    """Split a canonical line back into its fields (text fields are length-prefixed)."""
    out, pos = [], 0
    for k, spec in enumerate(specs):
        if spec.kind in ("text", "json"):
            colon = line.index(":", pos)
            n = int(line[pos:colon])
            end = colon + 1 + max(n, 0)
            out.append(line[pos:end])
            pos = end + 1
        else:
            end = line.find("\t", pos)
            end = len(line) if end < 0 else end
            out.append(line[pos:end])
            pos = end + 1
    return out


def _show(field_text: str, limit: int = 80, kind: str = "") -> str:
    if field_text in ("\\N", convert.TEXT_NULL):
        return "NULL"
    if kind == "float" and len(field_text) in (8, 16):
        try:
            return repr(struct.unpack(">d" if len(field_text) == 16 else ">f", bytes.fromhex(field_text))[0])
        except ValueError:
            pass
    if ":" in field_text and field_text.split(":", 1)[0].isdigit():
        field_text = field_text.split(":", 1)[1]
    return field_text if len(field_text) <= limit else field_text[:limit] + "..."


def _key_name(chk: TableCheck, key_fields: list) -> str:
    return ", ".join(f"{name}={_show(v)}" for name, v in zip(chk.key_columns or ["row"], key_fields))


def _source_rows(con, chk: TableCheck, where: str, params: tuple):
    """(key canonical fields, value canonical fields) of source rows, computed in Python (exact)."""
    sel = []
    for spec in chk.key_specs + chk.columns:
        sel.extend(fastpath.strict_select(spec))
    order = qi(chk.int_key) if chk.int_key else "1"
    cur = con.execute(f"SELECT {', '.join(sel)} FROM {qi(chk.table)} WHERE {where} ORDER BY {order}", params)
    nk = len(chk.key_specs)
    for row in cur:
        fields = []
        for k, spec in enumerate(chk.key_specs + chk.columns):
            typ, value = row[2 * k], row[2 * k + 1]
            typ = typ.decode() if isinstance(typ, bytes) else typ
            try:
                fields.append(convert.canonical_field(spec.kind, spec.params, typ, value))
            except convert.Reject as exc:
                fields.append(fastpath.REJECT_MARK + str(exc))
        yield fields[:nk], fields[nk:]


def _target_rows(conn, chk: TableCheck, where: str, params: tuple):
    sel = [fastpath.pg_canonical(s) for s in chk.key_specs + chk.columns]
    order = quote_ident(chk.key_specs[0].target) if chk.int_key else "1"
    nk = len(chk.key_specs)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(sel)} FROM {chk.qualified} WHERE {where} ORDER BY {order}", params)
        for row in cur:
            yield list(row[:nk]), list(row[nk:])


def _compare_rows(chk: TableCheck, source: dict, target: dict, out: list, limit: int) -> int:
    """Differences between {key: fields} maps; returns how many, appends up to `limit` to out."""
    n = 0
    for k in sorted(set(source) | set(target)):
        s, t = source.get(k), target.get(k)
        if s is not None and t is not None:
            cols = {}
            for spec, a, b in zip(chk.columns, s, t):
                if not convert.same_value(spec.kind, a, b):
                    cols[spec.source] = {"source": _show(a, kind=spec.kind), "target": _show(b, kind=spec.kind)}
            if not cols:
                continue
            diff = {"table": chk.key, "key": _key_name(chk, list(k)), "kind": "changed", "columns": cols}
        elif s is not None:
            diff = {"table": chk.key, "key": _key_name(chk, list(k)), "kind": "missing in target"}
        else:
            diff = {"table": chk.key, "key": _key_name(chk, list(k)), "kind": "not in source"}
        n += 1
        if len(out) < limit:
            out.append(diff)
    return n


# ---- tasks -------------------------------------------------------------------------------

def check_ranges(ctx: WorkContext, chk: TableCheck, ranges: list) -> dict:
    """Compare key ranges [lo, hi] of an integer-keyed table; drill into the ones that differ."""
    con = ctx.sqlite(chk.path)
    conn = ctx.pg()
    excl = _exclusion(ctx, con, chk)
    k_src, k_tgt = qi(chk.int_key), quote_ident(chk.key_specs[0].target)
    s_line = fastpath.sqlite_canonical_line(chk.columns)
    t_line = fastpath.pg_canonical_line(chk.columns)
    s_sql = (f"SELECT count(*), group_concat(line, char(10)) FROM (SELECT {s_line} AS line FROM {qi(chk.table)} "
             f"WHERE {k_src} BETWEEN ? AND ? AND {excl} ORDER BY {k_src} LIMIT -1)")
    # The key index returns the rows in order, and string_agg keeps its input order as long as
    # no parallel plan reorders it; an ORDER BY inside string_agg would sort every range again.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    t_sql = (f"SELECT count(*), md5(string_agg(line, E'\\n')) FROM (SELECT {t_line} AS line "
             f"FROM {chk.qualified} WHERE {k_tgt} BETWEEN %s AND %s ORDER BY {k_tgt}) s")
    target_digests: dict = {}
    errors: list = []

    def pg_side():
        try:
            with conn.cursor() as cur:
                for lo, hi in ranges:
                    cur.execute(t_sql, (lo, hi))
                    n, digest = cur.fetchone()
                    target_digests[(lo, hi)] = (n, digest or "")
        except BaseException as exc:  # re-raised in the task's thread
            errors.append(exc)

    # PostgreSQL works on its side of every range while SQLite works on ours.
    thread = threading.Thread(target=pg_side)
    thread.start()
    source_digests = {}
    rows = 0
    try:
        for lo, hi in ranges:
            ctx.check()
            n, blob = con.execute(s_sql, (lo, hi)).fetchone()
            source_digests[(lo, hi)] = (n, hashlib.md5(blob).hexdigest() if blob is not None else "")
            rows += n
            ctx.send({"type": "rows", "table": chk.key, "read": n})
    finally:
        thread.join()
    if errors:
        raise errors[0]
    out = {"key": chk.key, "ranges": len(ranges), "rows_source": rows, "rows_target": 0, "mismatched_ranges": 0,
           "differences": [], "difference_count": 0, "pid": os.getpid()}
    for rng in ranges:
        sn, sd = source_digests[rng]
        tn, td = target_digests[rng]
        out["rows_target"] += tn
        if (sn, sd) == (tn, td) or (sn == tn == 0):
            continue
        out["mismatched_ranges"] += 1
        where_s = f"{k_src} BETWEEN ? AND ? AND {excl}"
        source = {tuple(k): v for k, v in _source_rows(con, chk, where_s, rng)}
        target = {tuple(k): v for k, v in _target_rows(conn, chk, f"{k_tgt} BETWEEN %s AND %s", rng)}
        out["difference_count"] += _compare_rows(chk, source, target, out["differences"], MAX_DIFFERENCES)
    return out


def check_merge(ctx: WorkContext, chk: TableCheck) -> dict:
    """Compare a table without an integer key: both sides streamed in canonical-key order."""
    con = ctx.sqlite(chk.path)
    conn = ctx.pg()
    excl = _exclusion(ctx, con, chk)
    s_key = fastpath.printf_line([fastpath.sqlite_canonical(s) for s in chk.key_specs]) if chk.key_specs else None
    s_line = fastpath.sqlite_canonical_line(chk.columns)
    t_key = fastpath.pg_canonical_line(chk.key_specs) if chk.key_specs else None
    t_line = fastpath.pg_canonical_line(chk.columns)
    s_sql = (f"SELECT {s_key or s_line} AS k, {s_line} AS line FROM {qi(chk.table)} WHERE {excl} ORDER BY k")
    t_sql = (f"SELECT k, line FROM (SELECT {t_key or t_line} AS k, {t_line} AS line FROM {chk.qualified}) s "
             f"ORDER BY k COLLATE \"C\"")
    out = {"key": chk.key, "ranges": 1, "rows_source": 0, "rows_target": 0, "mismatched_ranges": 0,
           "differences": [], "difference_count": 0, "pid": os.getpid()}
    scur = con.execute(s_sql)
    source_only, target_only, changed = {}, {}, {}

    def src_iter():
        for k, line in scur:
            yield k.decode("utf-8", "replace"), line.decode("utf-8", "replace")

    with conn.transaction(), conn.cursor(name="pgm_validate") as tcur:
        tcur.itersize = 5000
        tcur.execute(t_sql)
        s_it, t_it = src_iter(), iter(tcur)
        s_row, t_row = next(s_it, None), next(t_it, None)
        while s_row is not None or t_row is not None:
            if t_row is None or (s_row is not None and s_row[0].encode() < t_row[0].encode()):
                out["rows_source"] += 1
                source_only[s_row[0]] = s_row[1]
                s_row = next(s_it, None)
            elif s_row is None or t_row[0].encode() < s_row[0].encode():
                out["rows_target"] += 1
                target_only[t_row[0]] = t_row[1]
                t_row = next(t_it, None)
            else:
                out["rows_source"] += 1
                out["rows_target"] += 1
                if s_row[1] != t_row[1]:
                    changed[s_row[0]] = (s_row[1], t_row[1])
                s_row, t_row = next(s_it, None), next(t_it, None)
            if (out["rows_source"] & 0x3FFF) == 0:
                ctx.send({"type": "rows", "table": chk.key, "read": 0x4000})
                ctx.check()
    def key_of(k: str) -> tuple:
        return tuple(_fields(k, chk.key_specs)) if chk.key_specs else (k,)

    source, target = {}, {}
    for k, line in source_only.items():
        source[key_of(k)] = _fields(line, chk.columns)
    for k, line in target_only.items():
        target[key_of(k)] = _fields(line, chk.columns)
    for k, (a, b) in changed.items():
        source[key_of(k)], target[key_of(k)] = _fields(a, chk.columns), _fields(b, chk.columns)
    named = chk if chk.key_specs else TableCheck(**{**chk.__dict__, "key_columns": ["row"]})
    out["difference_count"] = _compare_rows(named, source, target, out["differences"], MAX_DIFFERENCES)
    out["mismatched_ranges"] = 1 if out["difference_count"] else 0
    return out


def check_foreign_key(ctx: WorkContext, chk: TableCheck, fk: dict) -> dict:
    """Dangling references in the target, compared with the same check on the source."""
    con = ctx.sqlite(chk.path)
    conn = ctx.pg()
    parent = f"{quote_ident(chk.schema)}.{quote_ident(fk['ref_target'])}"
    notnull = " AND ".join(f"c.{quote_ident(c)} IS NOT NULL" for c in fk["columns"])
    match = " AND ".join(f"p.{quote_ident(r)} = c.{quote_ident(c)}" for c, r in zip(fk["columns"], fk["ref_columns"]))
    t_key = fastpath.pg_canonical_line(chk.key_specs) if chk.key_specs else "ctid::text"
    t_rows = conn.execute(f"SELECT {t_key} FROM {chk.qualified} c WHERE {notnull} AND NOT EXISTS "
                          f"(SELECT 1 FROM {parent} p WHERE {match})").fetchall()
    out = {"key": chk.key, "name": fk["name"], "parent": fk["ref_table"], "dangling_target": len(t_rows),
           "dangling_source": None, "new_count": 0, "new": []}
    if not t_rows:  # nothing dangling in the target: nothing to tell apart
        return out
    s_key = fastpath.printf_line([fastpath.sqlite_canonical(s) for s in chk.key_specs]) if chk.key_specs \
        else (qi(chk.rowid_name) if chk.rowid_name else "NULL")
    s_notnull = " AND ".join(f"c.{qi(c)} IS NOT NULL" for c in fk["source_columns"])
    s_match = " AND ".join(f"p.{qi(r)} = c.{qi(c)}" for c, r in zip(fk["source_columns"], fk["source_ref_columns"]))
    s_rows = con.execute(f"SELECT {s_key} FROM {qi(chk.table)} AS c WHERE {s_notnull} AND NOT EXISTS "
                         f"(SELECT 1 FROM {qi(fk['ref_table'])} p WHERE {s_match})").fetchall()
    target_keys = {str(r[0]) for r in t_rows}
    source_keys = {r[0].decode() if isinstance(r[0], bytes) else str(r[0]) for r in s_rows}
    new = sorted(target_keys - source_keys) if chk.key_specs else []
    out.update(dangling_source=len(source_keys),
               new_count=len(new) if chk.key_specs else max(0, len(target_keys) - len(source_keys)),
               new=[_key_name(chk, _fields(k, chk.key_specs)) for k in new[:MAX_DIFFERENCES]])
    return out


def sample_queries(ctx: WorkContext, chk: TableCheck, queries: list) -> list:
    """Run each (label, sqlite sql, postgres sql) pair and compare the answers.

    ``{EXCL}`` in the SQLite query stands for "not a rejected row" (``{EXCL_C}`` for the
    same on the alias c in joins).
    """
    con = ctx.sqlite(chk.path)
    conn = ctx.pg()
    excl = _exclusion(ctx, con, chk)
    excl_c = _exclusion(ctx, con, chk, alias="c")
    out = []
    for label, s_sql, t_sql in queries:
        s_sql = s_sql.replace("{EXCL_C}", excl_c).replace("{EXCL}", excl)
        b = [_norm(x) for x in conn.execute(t_sql).fetchone()]
        try:
            a = [_norm(v.decode() if isinstance(v, bytes) else v) for v in con.execute(s_sql).fetchone()]
            equal = a == b
        except Exception as exc:  # SQLite's sum() overflows where PostgreSQL's does not
            a, equal = [f"not comparable: {exc}"], None
        out.append({"table": chk.key, "query": label, "sqlite": s_sql, "postgres": t_sql,
                    "sqlite_answer": a, "postgres_answer": b, "equal": equal})
    return out


# The tasks validation hands its worker pool, by the kind it submits them under.
VALIDATE_TASKS = {
    "vranges": check_ranges,
    "vmerge": check_merge,
    "vfk": check_foreign_key,
    "vsample": sample_queries,
}


def _norm(value):
    if value is None:
        return None
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else round(float(value), 6)
    return value


# ---- the step ----------------------------------------------------------------------------

def _checks_for(conn, plan: Plan, sources: dict, has_control: bool, chosen: dict, report: ValidateReport) -> list:
    from .run import column_specs
    from .sources import open_source

    checks = []
    for tp in plan.tables:
        if not table_exists(conn, tp.schema, tp.target):
            checks.append((tp, None))
            continue
        cols = column_specs(conn, tp.schema, tp, include_generated=True, file_decisions=chosen)
        if any(decisions.count_sql("c", c.params) for c in cols):
            con = open_source(Path(sources[tp.source]))
            try:
                report.converted += decisions.converted(con, tp.source, tp.table, cols)
            finally:
                con.close()
        by_source = {c.source: c for c in cols}
        key_cols = list(tp.pk_source)
        key_specs = [by_source[c] for c in key_cols if c in by_source]
        int_key = key_cols[0] if len(key_cols) == 1 and key_specs and key_specs[0].kind == "int" else None
        checks.append((tp, TableCheck(key=tp.key, source=tp.source, path=str(sources[tp.source]), table=tp.table,
                                      schema=tp.schema, target=tp.target, columns=cols, key_columns=key_cols,
                                      key_specs=key_specs, int_key=int_key, rowid_name=tp.rowid_name,
                                      has_control=has_control)))
    return checks


def _sample_sql(chk: TableCheck, tp: TablePlan) -> list:
    """(label, SQLite SQL, PostgreSQL SQL) of the sample queries for one table.

    One aggregate query per table (row count; min, max and sum of the key; sums of up to
    three integer columns; non-null count and longest value of up to two text columns): one
    scan on each side, little beside the checksums. Joins are checked by `check_foreign_key`.
    """
    t = qi(chk.table)
    s_parts, t_parts, labels = ["count(*)"], ["count(*)"], ["rows"]
    if chk.int_key:
        s, g = qi(chk.int_key), quote_ident(chk.key_specs[0].target)
        s_parts += [f"min({s})", f"max({s})", f"sum({s})"]
        t_parts += [f"min({g})", f"max({g})", f"sum({g})"]
        labels += [f"min({chk.int_key})", f"max({chk.int_key})", f"sum({chk.int_key})"]
    for c in [c for c in chk.columns if c.kind == "int" and c.source != chk.int_key][:3]:
        s_parts.append(f"sum({qi(c.source)})")
        t_parts.append(f"sum({quote_ident(c.target)})")
        labels.append(f"sum({c.source})")
    # SQLite's length() stops at a NUL, which a nul=strip column holds: left to the checksums
    for c in [c for c in chk.columns if c.kind == "text" and not c.params.get("nul")][:2]:
        s_parts += [f"count({qi(c.source)})", f"max(length({qi(c.source)}))"]
        t_parts += [f"count({quote_ident(c.target)})", f"max(length({quote_ident(c.target)}))"]
        labels += [f"count({c.source})", f"longest {c.source}"]
    q = [(", ".join(labels), f"SELECT {', '.join(s_parts)} FROM {t} WHERE {{EXCL}}",
          f"SELECT {', '.join(t_parts)} FROM {chk.qualified}")]
    return q


def validate_step(sources: dict, target_url: str, workdir: Path, progress=None, should_cancel=None,
                  workers: Optional[int] = None, busy_timeout: float = 5.0) -> ValidateReport:
    """Compare every table of the sources with the target (see the module docstring)."""
    workdir = Path(workdir)
    if not target_url:
        raise InputError("the validate step needs --target")
    sources = {k: Path(v) for k, v in sources.items()}
    connect(target_url, purpose="validate").close()  # an unusable target fails before any work
    plan_path = workdir / PLAN_FILE
    if not plan_path.exists():
        raise InputError(f"{plan_path}: no plan; run the schema and run steps first (same --workdir)")
    plan = Plan.load(plan_path)
    # the approved file says how epoch numbers and NUL characters were converted
    chosen = decisions.from_statements(ddl.parse_schema_file((workdir / SCHEMA_FILE).read_text(encoding="utf-8"))) \
        if (workdir / SCHEMA_FILE).exists() else {}
    missing = set(plan.sources) ^ set(sources)
    if missing:
        raise InputError(f"--source names {sorted(sources)} do not match the plan's {sorted(plan.sources)}")
    report = ValidateReport()
    rep = Reporter("validate", progress, should_cancel, log_path=workdir / "logs" / "validate.log")
    if current_plan(sources, workdir) is None:
        report.warn("the source files changed since the schema step; differences below may be new writes")
    if workers is None:
        workers = max(2, min((os.cpu_count() or 1) + 1, 8))
    conn = connect(target_url, autocommit=True, purpose="validate")
    try:
        has_control = schema_exists(conn, CONTROL_SCHEMA)
        rejected = {}
        if has_control:
            rejected = {(r[0], r[1]): r[2] for r in conn.execute(
                f"SELECT source, table_name, count(*) FROM {CONTROL_SCHEMA}.rejects GROUP BY 1, 2")}
        checks = _checks_for(conn, plan, sources, has_control, chosen, report)
        _run_checks(report, rep, target_url, workers, busy_timeout, checks, rejected, sources)
    except Cancelled as exc:
        report.problem(f"{exc}")
    except psycopg.Error as exc:
        raise target_error(target_url, exc, "validating") from None
    finally:
        conn.close()
    rep.finish()
    report.finish()
    path = workdir / "validation-report.json"
    path.write_text(report.to_json() + "\n", encoding="utf-8")
    report.artifacts.append(str(path))
    write_report(report, workdir)
    return report


def _plan_ranges(chk: TableCheck) -> tuple[list, int]:
    from .sources import open_source

    con = open_source(Path(chk.path))
    try:
        fastpath.register_functions(con)
        k = qi(chk.int_key)
        n = con.execute(f"SELECT count(*) FROM {qi(chk.table)}").fetchone()[0]
        lo = con.execute(f"SELECT min({k}) FROM {qi(chk.table)}").fetchone()[0]  # one each: see run.plan_chunks
        hi = con.execute(f"SELECT max({k}) FROM {qi(chk.table)}").fetchone()[0]
        sample = con.execute(f"SELECT count(*), sum(length(CAST(line AS BLOB))) FROM (SELECT "
                             f"{fastpath.sqlite_canonical_line(chk.columns)} AS line FROM {qi(chk.table)} LIMIT 1000)").fetchone()
    finally:
        con.close()
    row_bytes = max(16.0, (sample[1] or 0) / sample[0]) if sample[0] else 100.0
    lo = -(2 ** 63) if lo is None else lo
    hi = lo if hi is None else hi
    density = n / (hi - lo + 1) if n else 1
    rows = max(50, min(RANGE_ROWS, int(RANGE_BYTES / row_bytes)))
    width = max(1, int(rows / max(density, 1e-9)))
    # open ends catch target rows outside the source's key range
    ranges = [(-(2 ** 63), lo - 1)] if lo > -(2 ** 63) else []
    start = lo
    while start <= hi:
        end = min(hi, start + width - 1)
        ranges.append((start, end))
        start = end + 1
    if hi < 2 ** 63 - 1:
        ranges.append((hi + 1, 2 ** 63 - 1))
    return ranges, n


def _run_checks(report: ValidateReport, rep: Reporter, url: str, workers: int, busy_timeout: float, checks: list,
                rejected: dict, sources: dict) -> None:
    tasks, total_rows = [], 0
    per_table = {}
    for tp, chk in checks:
        entry = {"source": tp.source, "table": tp.table, "target": f"{tp.schema}.{tp.target}",
                 "mode": "key ranges" if chk and chk.int_key else "merge", "source_rows": 0,
                 "rejected": rejected.get((tp.source, tp.table), 0), "target_rows": 0, "match": False,
                 "ranges": 0, "mismatched_ranges": 0, "differences": 0}
        per_table[tp.key] = entry
        report.tables.append(entry)
        if chk is None:
            report.problem(f"{tp.key}: target table {tp.schema}.{tp.target} does not exist")
            continue
        if chk.int_key:
            ranges, n = _plan_ranges(chk)
            total_rows += n
            for k in range(0, len(ranges), TASK_RANGES):
                tasks.append((n, "vranges", f"{tp.key}#r{k}", {"chk": chk, "ranges": ranges[k:k + TASK_RANGES]}))
        else:
            total_rows += tp.row_count
            tasks.append((tp.row_count, "vmerge", f"{tp.key}#merge", {"chk": chk}))
        for fk in tp.foreign_keys:
            if fk.status == "ok":
                tasks.append((0, "vfk", f"{tp.key}#fk#{fk.name}", {"chk": chk, "fk": {
                    "name": fk.name, "columns": fk.columns, "ref_columns": fk.ref_columns, "ref_target": fk.ref_target,
                    "ref_table": fk.ref_table, "source_columns": fk.source_columns,
                    "source_ref_columns": fk.source_ref_columns}}))
        tasks.append((0, "vsample", f"{tp.key}#sample", {"chk": chk, "queries": _sample_sql(chk, tp)}))
    tasks.sort(key=lambda t: -t[0])
    rep.start(rows_total=total_rows, tables_total=len(checks), message=f"validating {len(checks)} tables")

    def on_message(msg):
        if msg.get("type") == "rows":
            rep.add(msg.get("read", 0), table=msg.get("table"))
        elif msg.get("type") == "log":
            rep.log(msg["message"], msg.get("level", "info"))

    pool = make_pool(url, workers, busy_timeout, on_message, VALIDATE_TASKS, check=rep.check_cancel,
                     log=rep.log)
    queue = list(tasks)
    in_flight = {}
    try:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                _, kind, task_id, args = queue.pop(0)
                in_flight[task_id] = kind
                pool.submit(task_id, kind, args)
            rep.check_cancel()
            for status, task_id, payload in pool.poll(0.2):
                kind = in_flight.pop(task_id)
                if status == "error":
                    if payload["kind"] == "cancelled":
                        raise Cancelled(payload["message"])
                    if payload["kind"] == "input":
                        raise TargetError(payload["message"])
                    report.problem(f"{task_id}: {payload['message']}")
                    continue
                _absorb(report, per_table, kind, payload)
    except BaseException:
        pool.close(kill=True)
        raise
    pool.close()
    for key, e in per_table.items():
        expected = e["source_rows"]
        e["match"] = e["differences"] == 0 and expected == e["target_rows"] and e["mode"] != ""
        if e["target_rows"] != expected:
            report.problem(f"{key}: {expected} source rows (rejected rows left out) but {e['target_rows']} in the target")
        if e["differences"]:
            report.problem(f"{key}: {e['differences']} rows differ (see differences)")
        if e["rejected"]:
            # Left out of the comparison, but not in the target either: loss until loaded.
            report.problem(f"{key}: {e['rejected']} rows were rejected by the run and are not "
                           f"in the target (see the rejects file)")
        rep.table_done(key)
    report.totals = {"source_rows": sum(e["source_rows"] for e in per_table.values()),
                     "target_rows": sum(e["target_rows"] for e in per_table.values()),
                     "rejected": sum(e["rejected"] for e in per_table.values()),
                     "differences": sum(e["differences"] for e in per_table.values()),
                     "tables_matching": sum(1 for e in per_table.values() if e["match"]),
                     "checker_processes": len(report._checker_pids)}


def _absorb(report: ValidateReport, per_table: dict, kind: str, payload) -> None:
    if kind in ("vranges", "vmerge"):
        report._checker_pids.add(payload.get("pid"))
        e = per_table[payload["key"]]
        e["source_rows"] += payload["rows_source"]
        e["target_rows"] += payload["rows_target"]
        e["ranges"] += payload["ranges"]
        e["mismatched_ranges"] += payload["mismatched_ranges"]
        e["differences"] += payload["difference_count"]
        for d in payload["differences"]:
            if len(report.differences) < 500:
                report.differences.append(d)
            if len([p for p in report.problems if p.startswith("difference")]) < 200:
                detail = "; ".join(f"{c}: source {v['source']!r}, target {v['target']!r}"
                                   for c, v in d.get("columns", {}).items())
                report.problem(f"difference in {d['table']} at {d['key']}: {d['kind']}" + (f" ({detail})" if detail else ""))
    elif kind == "vfk":
        report.foreign_keys.append(payload)
        if payload["new_count"]:
            report.problem(f"{payload['key']}: foreign key {payload['name']}: {payload['new_count']} references to "
                           f"missing {payload['parent']} rows that the source does not have: "
                           + "; ".join(payload["new"][:10]))
        elif payload["dangling_target"]:
            report.warn(f"{payload['key']}: foreign key {payload['name']}: {payload['dangling_target']} dangling "
                        f"references, the same as in the SQLite source")
    elif kind == "vsample":
        report.sample_queries.extend(payload)
        for q in payload:
            if q["equal"] is None:
                report.warn(f"{q['table']}: sample query '{q['query']}' not comparable: {q['sqlite_answer'][0]}")
            elif not q["equal"]:
                report.problem(f"{q['table']}: sample query '{q['query']}' answers differ: SQLite "
                               f"{q['sqlite_answer']}, PostgreSQL {q['postgres_answer']}")
