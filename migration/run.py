"""The run step: load every table into the target, resumably, then keys, indexes, foreign
keys, identities and views, and report read = loaded + rejected for every table.

The caller's thread plans and schedules; worker processes (`workers`) load chunks through
`load`. The control schema in the target (`target.control_ddl`) holds the chunk plan and one
progress row per loaded chunk, so a run that was killed (or whose database restarted)
continues with the chunks that never committed. ``dry_run`` does all of it inside one
transaction under throwaway schema names and rolls it back.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import psycopg

from . import ddl, decisions, fastpath
from .catalog import qi
from .ddl_names import fit_name, quote_ident
from .errors import Cancelled, InputError, TargetError
from .redact import redact_url
from .load import TableJob, add_foreign_key, build_object, load_chunk, settle_table
from .plan import Plan, TablePlan
from .progress import Reporter
from .reports import RunReport, end_step
from .schema import (PLAN_FILE, SCHEMA_FILE, apply_statements, current_plan, ensure_control, prepare,
                     same_file_version, sha256_text, verify, why_not_current)
from .sources import file_identity, open_source
from .target import CONTROL_SCHEMA, advisory_key, connect, target_error, target_columns
from .typemap import kind_for_pg_type
from .remote import RemotePool
from .workers import make_pool

# The tasks a run hands its worker pool, by the kind it submits them under.
LOAD_TASKS = {
    "chunk": load_chunk,
    "build": build_object,
    "settle": settle_table,
    "fk": add_foreign_key,
}

BATCH_BYTES = 4 << 20  # COPY text per SQLite query: bounds each worker's memory
CHUNK_BYTES = 16 << 20  # COPY text per transaction: the unit of resumption
MAX_CHUNK_ROWS = 150_000


def column_specs(conn, schema: str, tp: TablePlan, include_generated: bool = False,
                 census_holds: bool = True, file_decisions: Optional[dict] = None) -> list:
    """The loaded columns of a table, with conversion kinds taken from the target's real types.

    Generated columns are computed by PostgreSQL; they are compared (include_generated) but
    not loaded. Without `census_holds` (the source was written since the schema step's census)
    no column is taken as proven: every row passes its guard or goes through `convert`, so a row
    the census did not foresee is loaded or becomes an accounted reject. `file_decisions` are
    the decisions unified_schema.sql holds for the whole plan (`decisions.from_statements`):
    they, not the plan's proposals, say how epoch numbers and NUL characters convert.
    """
    file_decisions = file_decisions or {}
    specs = []
    for col in target_columns(conn, schema, tp.target):
        if col["generated"] and not include_generated:
            continue
        cp = next((c for c in tp.columns if c.target == col["name"]), None)
        if cp is None:
            raise InputError(f"target column {schema}.{tp.target}.{col['name']} has no source column in "
                             f"{tp.source}.{tp.table}; was unified_schema.sql edited to add it?")
        kind, params = kind_for_pg_type(col["type"])
        always_int = cp.source == tp.rowid_alias or (tp.strict and cp.declared.upper() in ("INT", "INTEGER"))
        chosen = file_decisions.get((tp.schema, tp.target, cp.target), {})
        converting = decisions.check_kind(f"unified_schema.sql: column {tp.schema}.{tp.target}.{cp.target}",
                                          chosen, kind)
        spec = fastpath.ColumnSpec(source=cp.source, target=cp.target, kind=kind, params={**params, **converting},
                                   notnull=col["notnull"], always_int=always_int)
        # The census counted values for the planned type and decisions; it holds only if the
        # target and the approved file kept them.
        if census_holds and chosen == cp.decisions and (kind, params, col["notnull"]) == (
                cp.kind, _pg_params(cp), cp.notnull or cp.identity):
            spec.proven = bool(cp.fast.get("guard"))
            spec.plain = bool(cp.fast.get("plain"))
            spec.float17 = bool(cp.fast.get("float17"))
            spec.nonull = bool(cp.fast.get("nonull"))
            spec.ts19 = bool(cp.fast.get("ts19"))
            spec.ts26 = bool(cp.fast.get("ts26")) and not spec.ts19
            if spec.ts26 and spec.proven:
                spec.params = {**spec.params, "us6": True}  # validation compares all six digits
        specs.append(spec)
    if not specs:
        raise InputError(f"target table {schema}.{tp.target} does not exist or has no columns")
    return specs


def _pg_params(cp) -> dict:
    """The parameters `kind_for_pg_type` would give for the planned type."""
    return kind_for_pg_type(cp.pg_type)[1]


def plan_chunks(con, tp: TablePlan, chunk_rows: Optional[int] = None) -> dict:
    """How to cut one table: chunks [(chunk_no, lo, hi)] of rowids, and batch sizes.

    Chunks are the unit of resumption (one transaction each) and are sized in bytes of COPY
    text; batches are the unit of memory (one SQLite query each). Row count and row width
    come from the plan, which describes this very version of the file (see current_plan).
    """
    rows = tp.row_count
    width = max(16.0, tp.copy_bytes_per_row or 100.0)
    batch_rows = int(min(50_000, max(20, BATCH_BYTES / width)))
    if chunk_rows:
        batch_rows = min(batch_rows, chunk_rows)
    else:
        chunk_rows = int(min(MAX_CHUNK_ROWS, max(batch_rows, CHUNK_BYTES / width)))
    out = {"rows": rows, "row_bytes": width, "batch_rows": batch_rows, "batch_width": batch_rows,
           "density": 1.0, "chunks": []}
    if not rows:
        return out
    if not tp.rowid_name:
        out["chunks"] = [(0, None, None)]
        return out
    rid = qi(tp.rowid_name)
    # two queries: SQLite answers a lone min() or max() of the rowid from the b-tree's ends,
    # but scans the whole table for both at once
    lo = con.execute(f"SELECT min({rid}) FROM {qi(tp.table)}").fetchone()[0]
    hi = con.execute(f"SELECT max({rid}) FROM {qi(tp.table)}").fetchone()[0]
    span = hi - lo + 1
    out["density"] = rows / span
    step = math.ceil(span / max(1, math.ceil(rows / chunk_rows)))
    start = lo
    while start <= hi:
        end = min(hi, start + step - 1)
        out["chunks"].append((len(out["chunks"]), start, end))
        start = end + 1
    out["batch_width"] = max(1, int(batch_rows / out["density"]))
    return out


class _Run:
    """State of one run (or dry run) while it executes."""

    def __init__(self, sources, url, workdir, dry_run, reporter: Reporter, workers, busy_timeout, chunk_rows=None):
        self.sources = {k: Path(v) for k, v in sources.items()}
        self.url = url
        self.workdir = Path(workdir)
        self.dry_run = dry_run
        self.rep = reporter
        self.workers = workers
        self.busy_timeout = busy_timeout
        self.chunk_rows = chunk_rows
        self.report = RunReport(dry_run=dry_run)
        self.counts: dict = {}
        self.suffix = secrets.token_hex(3)
        self.control = fit_name(f"pgm_dry_{self.suffix}_ctl") if dry_run else CONTROL_SCHEMA
        self.run_id = ""
        # Sources written since the schema step (new rows; their schema is the plan's): their
        # census no longer holds and their row counts are taken again.
        self.changed: set = set()
        self.identity_at_start: dict = {}
        self.loader_pids: set = set()  # processes that loaded chunks (reported as a figure)
        self.remote = None  # migration.remote.Remote: chunks loaded by workers elsewhere

    def schema_of(self, schema: str) -> str:
        return fit_name(f"pgm_dry_{self.suffix}_{schema}") if self.dry_run else schema

    # -- messages from tasks ------------------------------------------------------------
    def on_message(self, msg: dict) -> None:
        if msg.get("type") == "rows":
            c = self.counts.setdefault(msg["table"], {"read": 0, "rejected": 0})
            c["read"] += msg.get("read", 0)
            c["rejected"] += msg.get("rejected", 0)
            self.rep.add(msg.get("read", 0), msg.get("bytes", 0), table=msg["table"])
        elif msg.get("type") == "log":
            self.rep.log(msg["message"], msg.get("level", "info"))


def run_step(sources: dict, target_url: str, workdir: Path, dry_run: bool = False, progress=None, should_cancel=None,
             workers: Optional[int] = None, busy_timeout: float = 5.0, chunk_rows: Optional[int] = None,
             schema_sha256: Optional[str] = None, remote=None) -> RunReport:
    """Migrate the sources into the target (see the module docstring).

    `chunk_rows` overrides the rows per transaction (the unit of resumption), which is
    otherwise chosen from each table's row width. With `schema_sha256` (the approved file's)
    the run refuses unless unified_schema.sql in the workdir is exactly that file and still
    describes the sources' schema; it never generates one. With `remote`
    (migration.remote.Remote) chunks are loaded by remote workers (`remote.slots` at a time) and
    the rest (keys, indexes, foreign keys) by this process's own pool.
    """
    workdir = Path(workdir)
    if not target_url:
        raise InputError("the run step needs --target")
    rep = Reporter("run", progress, should_cancel, log_path=workdir / "logs" / ("dry-run.log" if dry_run else "run.log"))
    if workers is None:
        # one more than the cores: each worker waits on PostgreSQL part of the time
        workers = max(2, min((os.cpu_count() or 1) + 1, 8))
    state = _Run(sources, target_url, workdir, dry_run, rep, 1 if dry_run else workers, busy_timeout, chunk_rows)
    state.remote = None if dry_run else remote  # a dry run loads inside one transaction
    report = state.report
    report.workers = state.workers
    stale = why_not_current(state.sources, workdir)
    if schema_sha256 is not None or (stale and (workdir / PLAN_FILE).exists()):
        # A reviewed schema exists (or must): never replace it with one nobody reviewed.
        if stale:
            raise InputError(f"{stale}; run the schema step again and have the new "
                             f"unified_schema.sql approved")
        actual = sha256_text((workdir / SCHEMA_FILE).read_text(encoding="utf-8"))
        if schema_sha256 is not None and actual != schema_sha256.strip().lower():
            raise InputError(f"{workdir / SCHEMA_FILE} has sha256 {actual}, not the approved "
                             f"{schema_sha256.strip().lower()}; it was changed after the approval")
    conn = connect(target_url, autocommit=True, purpose="run")  # an unusable target fails before any work
    current = current_plan(state.sources, workdir)
    if current is None:
        rep.log("no unified_schema.sql in the workdir yet: generating it")
        plan, text, _ = prepare(state.sources, workdir, target_url, busy_timeout, None)
        report.warn("unified_schema.sql was generated by this run (no reviewed schema for these sources was found)")
    else:
        plan, text = current
    report.schema_sha256 = sha256_text(text)
    # a decision the file cannot honour stops the run before it writes anything
    decisions.from_statements(ddl.parse_schema_file(text), lambda t: kind_for_pg_type(t)[0])
    for name, path in state.sources.items():
        state.identity_at_start[name] = file_identity(path)
        if not same_file_version(plan.sources[name].get("identity") or {}, state.identity_at_start[name]):
            state.changed.add(name)
            rep.log(f"{name} was written since the schema step: its rows are counted again and "
                    f"checked one by one against the plan")
    report.artifacts.append(str(workdir / "unified_schema.sql"))
    try:
        if dry_run:
            # The rehearsal uses throwaway schema names, so it renders the plan's statements;
            # say so if the reviewed file differs from them.
            if _file_differs_from_plan(text, plan):
                report.warn("unified_schema.sql was edited after it was generated; the dry run used the "
                            "generated statements (the real run uses the edited file)")
            with conn.transaction(force_rollback=True):
                _execute(state, conn, plan, ddl.statements(plan, state.schema_of), sha256_text(text))
        else:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (advisory_key("pgmigrate run"),)).fetchone()[0]
            if not got:
                raise TargetError(f"{redact_url(target_url)}: another pgmigrate run is active on this database")
            _execute(state, conn, plan, ddl.parse_schema_file(text), sha256_text(text))
    except Cancelled as exc:
        report.problem(f"{exc}; run again to resume")
    except psycopg.Error as exc:
        raise target_error(target_url, exc, "running the migration (run again to resume)") from None
    finally:
        conn.close()
    return end_step(report, workdir, rep)


def _file_differs_from_plan(text: str, plan: Plan) -> bool:
    """Whether unified_schema.sql holds statements other than the ones the plan renders."""
    key = lambda s: (s.section, s.schema, s.object, s.sql)  # noqa: E731
    return [key(s) for s in ddl.parse_schema_file(text)] != [key(s) for s in ddl.statements(plan)]


def _execute(state: _Run, conn, plan: Plan, statements: list, plan_sha: str) -> None:
    rep, report = state.rep, state.report
    ctl = quote_ident(state.control)
    # Workers start now: their interpreters boot while this thread plans the chunks.
    pool = make_pool(state.url, state.workers, state.busy_timeout, state.on_message, LOAD_TASKS,
                     check=rep.check_cancel,
                     conn=conn if state.dry_run else None, log=rep.log)
    if state.remote is not None:
        rep.log(f"chunks go to remote workers, {state.remote.slots} at a time")
        pool = RemotePool(conn, state.control, state.remote.dispatch, pool, state.on_message,
                          busy_timeout=state.busy_timeout, redeliver_after=state.remote.redeliver_after,
                          log=rep.log)
        state.workers = state.remote.slots  # chunks in flight at once
    try:
        _prepare_and_load(state, conn, pool, plan, statements, plan_sha)
    except BaseException:
        pool.close(kill=True)
        raise


def _report_sources_changed_since_last_run(conn, ctl: str, state: _Run) -> None:
    """A run resumes from the chunks an earlier run loaded and never reads them again. If a
    source was written in between, those chunks may no longer match it: say so (the run then
    ends with a problem) instead of finishing as if nothing had happened."""
    loaded = {r[0] for r in conn.execute(f"SELECT DISTINCT source FROM {ctl}.progress")}
    changed = set()
    # Every earlier run into this target, not only the last: a third run must not forget what
    # the second one noticed (a rollback empties these tables and starts the record again).
    for (recorded,) in conn.execute(f"SELECT sources FROM {ctl}.runs WHERE sources IS NOT NULL"):
        for name, before in (recorded or {}).items():
            path = state.sources.get(name)
            if path is not None and name in loaded and not same_file_version(before, file_identity(path)):
                changed.add(path)
    for path in sorted(changed, key=str):
        state.report.problem(
            f"{path} changed since an earlier run loaded part of it; the rows loaded then are not "
            f"read again: run validate to see the differences, or roll back and run again")


def _prepare_and_load(state: _Run, conn, pool, plan: Plan, statements: list, plan_sha: str) -> None:
    rep, report = state.rep, state.report
    ctl = quote_ident(state.control)
    ensure_control(conn, state.control)
    if not state.dry_run:
        other = conn.execute(f"SELECT plan_sha256 FROM {ctl}.tables WHERE plan_sha256 <> %s UNION "
                             f"SELECT plan_sha256 FROM {ctl}.runs WHERE plan_sha256 <> %s",
                             (plan_sha, plan_sha)).fetchall()
        if other:
            raise InputError(f"{redact_url(state.url)}: the target was set up or loaded from a different "
                             f"unified_schema.sql (sha256 {other[0][0][:12]}..., now {plan_sha[:12]}...); run the "
                             f"rollback step first, or use another database")
    if not state.dry_run:
        _report_sources_changed_since_last_run(conn, ctl, state)
    state.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + state.suffix
    with conn.transaction():
        conn.execute(f"INSERT INTO {ctl}.runs (run_id, plan_sha256, sources) VALUES (%s, %s, %s)",
                     (state.run_id, plan_sha, json.dumps({n: {"path": str(p), **file_identity(p)} for n, p in state.sources.items()})))
    failed = apply_statements(conn, statements, ("prelude", "table"), state.control, state.schema_of)
    for f in failed:
        report.problem(f"could not create {f}")
    if failed:
        pool.close()
        return
    started = {r[0] + "." + r[1]: r[2] for r in conn.execute(f"SELECT source, table_name, state FROM {ctl}.tables")}
    by_table = {}
    for st in statements:
        by_table.setdefault((st.schema, st.table), []).append(st)
    # Tables never loaded may carry keys/indexes from `schema --apply`: drop them so the data
    # goes in without index maintenance; they are re-created right after the data.
    fresh = [tp for tp in plan.tables if tp.key not in started]
    _drop_post_objects(conn, plan, fresh, state)
    chosen = decisions.from_statements(statements)

    jobs, chunk_tasks, totals = {}, [], 0
    cons = {}
    for tp in plan.tables:
        schema = state.schema_of(tp.schema)
        cols = column_specs(conn, schema, tp, census_holds=tp.source not in state.changed, file_decisions=chosen)
        src = state.sources[tp.source]
        con = cons.get(tp.source) or open_source(src, busy_timeout=state.busy_timeout)
        cons[tp.source] = con
        fastpath.register_functions(con)
        state.report.converted += decisions.converted(con, tp.source, tp.table, cols)
        if tp.source in state.changed and tp.key not in started:
            tp.row_count = con.execute(f"SELECT count(*) FROM {qi(tp.table)}").fetchone()[0]
        cut = plan_chunks(con, tp, state.chunk_rows)
        if tp.key not in started:  # a resumed table keeps the chunks it was planned with
            with conn.transaction():
                conn.execute(f"INSERT INTO {ctl}.tables (source, table_name, target, rows_at_start, chunks, plan_sha256) "
                             f"VALUES (%s, %s, %s, %s, %s, %s)",
                             (tp.source, tp.table, f"{schema}.{tp.target}", cut["rows"], len(cut["chunks"]), plan_sha))
                for k, lo, hi in cut["chunks"]:
                    conn.execute(f"INSERT INTO {ctl}.chunks (source, table_name, chunk_no, lo, hi) VALUES (%s, %s, %s, %s, %s)",
                                 (tp.source, tp.table, k, lo, hi))
        jobs[tp.key] = TableJob(key=tp.key, source=tp.source, path=str(src), table=tp.table,
                                target=f"{quote_ident(schema)}.{quote_ident(tp.target)}", columns=cols,
                                rowid_name=tp.rowid_name, key_columns=list(tp.pk_source),
                                batch_rows=cut["batch_rows"], batch_width=cut["batch_width"], control=state.control)
        pending = conn.execute(
            f"SELECT c.chunk_no, c.lo, c.hi FROM {ctl}.chunks c WHERE c.source = %s AND c.table_name = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {ctl}.progress p WHERE p.source = c.source AND p.table_name = c.table_name "
            f"AND p.chunk_no = c.chunk_no) ORDER BY c.chunk_no", (tp.source, tp.table)).fetchall()
        table_bytes = cut["rows"] * cut["row_bytes"]
        parent = any(fk.ref_table == tp.table and fk.status == "ok" for t in plan.tables if t.source == tp.source
                     for fk in t.foreign_keys)
        for k, lo, hi in pending:
            # Parents first (foreign keys wait for their keys), then the largest tables, each
            # table's chunks together: its keys and indexes then build while others load.
            chunk_tasks.append(((1 if parent else 0, table_bytes, -k), tp.key, k, lo, hi))
        totals += conn.execute(f"SELECT rows_at_start FROM {ctl}.tables WHERE source = %s AND table_name = %s",
                               (tp.source, tp.table)).fetchone()[0]
    for con in cons.values():
        con.close()
    done_before = int(conn.execute(f"SELECT coalesce(sum(rows_read), 0) FROM {ctl}.progress").fetchone()[0])
    if done_before:
        rep.log(f"resuming: {done_before} rows were loaded by an earlier, interrupted run")
    rep.start(rows_total=totals - done_before, tables_total=len(plan.tables),
              message=f"loading {len(chunk_tasks)} chunks of {len(plan.tables)} tables with {state.workers} workers")
    _schedule(state, conn, pool, plan, jobs, chunk_tasks, by_table)
    views_failed = apply_statements(conn, statements, ("view",), state.control, state.schema_of)
    for f in views_failed:
        report.warn(f"view not created: {f}")
    _summarise(state, conn, plan, statements)


def _drop_post_objects(conn, plan: Plan, fresh: list, state: _Run) -> None:
    if not fresh:
        return
    keys = {tp.key for tp in fresh}
    with conn.transaction():
        for tp in plan.tables:
            for fk in tp.foreign_keys:
                if fk.status == "ok" and (tp.key in keys or f"{tp.source}.{fk.ref_table}" in keys):
                    conn.execute(f"ALTER TABLE IF EXISTS {quote_ident(state.schema_of(tp.schema))}.{quote_ident(tp.target)} "
                                 f"DROP CONSTRAINT IF EXISTS {quote_ident(fk.name)}")
        for tp in fresh:
            q = f"{quote_ident(state.schema_of(tp.schema))}.{quote_ident(tp.target)}"
            if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {q})").fetchone()[0]:
                raise InputError(f"{redact_url(state.url)}: table {q} already holds rows but no run loaded it; "
                                 f"empty it or run the rollback step first")
            for idx in tp.indexes:
                if idx.status == "ok":
                    conn.execute(f"DROP INDEX IF EXISTS {quote_ident(state.schema_of(tp.schema))}.{quote_ident(idx.name)}")
            for con in tp.constraints:
                if con.kind in ("primary", "unique") and con.status == "ok":
                    conn.execute(f"ALTER TABLE {q} DROP CONSTRAINT IF EXISTS {quote_ident(con.name)}")


def _fk_check_sql(state: _Run, tp: TablePlan, fk) -> str:
    child = f"{quote_ident(state.schema_of(tp.schema))}.{quote_ident(tp.target)}"
    parent = f"{quote_ident(state.schema_of(tp.schema))}.{quote_ident(fk.ref_target)}"
    notnull = " AND ".join(f"c.{quote_ident(col)} IS NOT NULL" for col in fk.columns)
    match = " AND ".join(f"p.{quote_ident(r)} = c.{quote_ident(col)}" for col, r in zip(fk.columns, fk.ref_columns))
    return f"SELECT count(*) FROM {child} c WHERE {notnull} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"


def _schedule(state: _Run, conn, pool, plan: Plan, jobs: dict, chunk_tasks: list, by_table: dict) -> None:
    """Feed the workers: chunks (largest first); as each table's data is in, its keys and
    indexes (one task each, so one table's indexes build in parallel), then its identity and
    statistics; foreign keys once both of their tables are finished."""
    rep, report = state.rep, state.report
    ctl = quote_ident(state.control)
    steps_done = {(r[0], r[1], r[2]) for r in conn.execute(f"SELECT source, table_name, step FROM {ctl}.steps WHERE ok")}
    by_key = {tp.key: tp for tp in plan.tables}
    chunk_tasks.sort(key=lambda t: t[0], reverse=True)
    queue = [("chunk", f"{key}#{k}", {"job": jobs[key], "chunk_no": k, "lo": lo, "hi": hi}, key)
             for _, key, k, lo, hi in chunk_tasks]
    chunks_left = {tp.key: 0 for tp in plan.tables}
    for _, key, _, _, _ in chunk_tasks:
        chunks_left[key] += 1
    builds_left: dict = {}
    build_failures: dict = {tp.key: [] for tp in plan.tables}
    finished: set = set()
    fk_waiting = []
    for tp in plan.tables:
        for fk in tp.foreign_keys:
            st = next((s for s in by_table.get((tp.schema, tp.target), []) if s.section == "fk" and s.object == fk.name), None)
            if fk.status == "ok" and st is not None:
                fk_waiting.append((tp, fk, st))

    def after_data(tp: TablePlan) -> list:
        stmts = [s for s in by_table.get((tp.schema, tp.target), []) if s.section in ("key", "index")]
        builds_left[tp.key] = len(stmts)
        if not stmts:
            return [settle_task(tp)]
        return [("build", f"{tp.key}#build#{s.object}",
                 {"key": tp.key, "schema": state.schema_of(tp.schema),
                  "statement": {"section": s.section, "object": s.object, "sql": s.sql}}, tp.key) for s in stmts]

    def settle_task(tp: TablePlan):
        identity = [(c.target, tp.sequence_floor) for c in tp.columns if c.identity]
        return ("settle", f"{tp.key}#settle", {"key": tp.key, "schema": state.schema_of(tp.schema),
                                               "target": tp.target, "identity": identity}, tp.key)

    for tp in plan.tables:
        if chunks_left[tp.key] == 0:
            if (tp.source, tp.table, "finish") in steps_done:
                finished.add(tp.key)
            else:
                queue.extend(after_data(tp))
    in_flight: dict = {}
    try:
        while True:
            for tp, fk, st in [x for x in fk_waiting if x[0].key in finished
                               and f"{x[0].source}.{x[1].ref_table}" in finished]:
                fk_waiting.remove((tp, fk, st))
                if (tp.source, tp.table, f"fk {fk.name}") in steps_done:
                    continue
                queue.append(("fk", f"{tp.key}#fk#{fk.name}",
                              {"key": tp.key, "schema": state.schema_of(tp.schema), "target": tp.target,
                               "statement": {"section": "fk", "object": fk.name, "sql": st.sql},
                               "check_sql": _fk_check_sql(state, tp, fk)}, tp.key))
            # work after the data first: it is short and unblocks foreign keys
            queue.sort(key=lambda t: 1 if t[0] == "chunk" else 0)
            while queue and len(in_flight) < state.workers:
                kind, task_id, args, key = queue.pop(0)
                in_flight[task_id] = (kind, key, args)
                pool.submit(task_id, kind, args)
            if not in_flight:
                for tp, fk, _ in fk_waiting:
                    report.problem(f"{tp.key}: foreign key {fk.name} not added: a table it joins did not finish")
                break
            rep.check_cancel()
            for status, task_id, payload in pool.poll(0.2):
                kind, key, args = in_flight.pop(task_id)
                tp = by_key[key]
                if status == "error":
                    if payload["kind"] in ("input", "cancelled"):
                        raise (Cancelled if payload["kind"] == "cancelled" else TargetError)(payload["message"])
                    report.problem(f"{task_id}: {payload['message']}")
                    continue
                if kind == "chunk":
                    state.loader_pids.add(payload.get("pid"))
                    chunks_left[key] -= 1
                    if chunks_left[key] == 0:
                        queue.extend(after_data(tp))
                elif kind == "build":
                    if not payload["ok"]:
                        build_failures[key].append(payload)
                        report.problem(f"{key}: could not create {payload['object']}: {payload['error']}")
                    builds_left[key] -= 1
                    if builds_left[key] == 0:
                        queue.append(settle_task(tp))
                elif kind == "settle":
                    _record_step(conn, ctl, tp, "finish", not build_failures[key], json.dumps(build_failures[key]))
                    finished.add(key)
                    rep.table_done(key)
                elif kind == "fk":
                    _handle_fk_result(state, conn, tp, payload)
                    _record_step(conn, ctl, tp, f"fk {payload['object']}", payload["validated"], payload["error"])
    except BaseException:
        pool.close(kill=True)
        raise
    pool.close()


def _record_step(conn, ctl, tp: TablePlan, step: str, ok: bool, detail) -> None:
    with conn.transaction():
        conn.execute(f"INSERT INTO {ctl}.steps (source, table_name, step, ok, detail) VALUES (%s, %s, %s, %s, %s) "
                     f"ON CONFLICT (source, table_name, step) DO UPDATE SET ok = excluded.ok, detail = excluded.detail, "
                     f"done_at = now()", (tp.source, tp.table, step, ok, detail))


def _handle_fk_result(state: _Run, conn, tp: TablePlan, payload: dict) -> None:
    report = state.report
    if payload["validated"]:
        return
    if not payload["added"]:
        report.problem(f"{tp.key}: foreign key {payload['object']} could not be added: {payload['error']}")
        return
    fk = next(f for f in tp.foreign_keys if f.name == payload["object"])
    source_bad = _source_fk_violations(state, tp, fk)
    if payload["violations"] <= source_bad:
        report.warn(f"{tp.key}: foreign key {fk.name} left NOT VALID: {payload['violations']} rows reference missing "
                    f"{fk.ref_table} rows, as in the SQLite source (PRAGMA foreign_key_check); new rows are checked")
    else:
        report.problem(f"{tp.key}: foreign key {fk.name}: {payload['violations']} dangling references in the target but "
                       f"{source_bad} in the source")


def _source_fk_violations(state: _Run, tp: TablePlan, fk) -> int:
    con = open_source(state.sources[tp.source], busy_timeout=state.busy_timeout)
    try:
        child, parent = qi(tp.table), qi(fk.ref_table)
        notnull = " AND ".join(f"c.{qi(c)} IS NOT NULL" for c in fk.source_columns)
        match = " AND ".join(f"p.{qi(r)} = c.{qi(c)}" for c, r in zip(fk.source_columns, fk.source_ref_columns))
        return con.execute(f"SELECT count(*) FROM {child} c WHERE {notnull} AND NOT EXISTS "
                           f"(SELECT 1 FROM {parent} p WHERE {match})").fetchone()[0]
    finally:
        con.close()


def _summarise(state: _Run, conn, plan: Plan, statements: list) -> None:
    report = state.report
    ctl = quote_ident(state.control)
    totals = {"read": 0, "loaded": 0, "rejected": 0}
    rows = {(r[0], r[1]): r[2:] for r in conn.execute(
        f"SELECT t.source, t.table_name, t.rows_at_start, t.chunks, coalesce(sum(p.rows_read), 0), "
        f"coalesce(sum(p.rows_loaded), 0), coalesce(sum(p.rows_rejected), 0), coalesce(sum(p.seconds), 0), "
        f"count(p.chunk_no), count(*) FILTER (WHERE p.strict) "
        f"FROM {ctl}.tables t LEFT JOIN {ctl}.progress p USING (source, table_name) GROUP BY 1, 2, 3, 4")}
    for tp in plan.tables:
        at_start, chunks, read, loaded, rejected, seconds, done_chunks, strict = rows.get((tp.source, tp.table), (0,) * 8)
        q = f"{quote_ident(state.schema_of(tp.schema))}.{quote_ident(tp.target)}"
        in_target = conn.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
        entry = {"source": tp.source, "table": tp.table, "target": f"{state.schema_of(tp.schema)}.{tp.target}",
                 "rows_at_start": at_start, "read": int(read), "loaded": int(loaded), "rejected": int(rejected),
                 "in_target": in_target, "chunks": chunks, "chunks_done": done_chunks, "strict_chunks": strict,
                 "seconds": round(float(seconds), 2)}
        report.tables.append(entry)
        for k in totals:
            totals[k] += entry[k]
        if done_chunks != chunks:
            report.problem(f"{tp.key}: {chunks - done_chunks} of {chunks} chunks not loaded")
        elif read != at_start:
            report.problem(f"{tp.key}: read {read} rows but the table held {at_start} when the run planned it "
                           f"(was the source written during the run?)")
        if read != loaded + rejected:
            report.problem(f"{tp.key}: read {read} != loaded {loaded} + rejected {rejected}")
        if in_target != loaded:
            report.problem(f"{tp.key}: the target holds {in_target} rows but {loaded} were loaded")
        if rejected:
            reasons = [r[0] for r in conn.execute(
                f"SELECT reason FROM {ctl}.rejects WHERE source = %s AND table_name = %s ORDER BY id LIMIT 5",
                (tp.source, tp.table))]
            entry["reject_examples"] = reasons
            report.problem(f"{tp.key}: {rejected} rows rejected (see the rejects file), e.g. {reasons[0]}")
    elapsed = time.monotonic() - report._t0
    totals["seconds"] = round(elapsed, 2)
    totals["rows_per_s"] = round(totals["read"] / elapsed) if elapsed > 0 else None
    totals["loader_processes"] = len(state.loader_pids)
    report.totals = totals
    for name, path in state.sources.items():
        if not same_file_version(state.identity_at_start.get(name) or {}, file_identity(path)):
            report.problem(f"{path} changed while it was being migrated; run validate to see the "
                           f"differences, or stop the writers and run again")
    report.rejects_file = _export_rejects(state, conn)
    if report.rejects_file:
        report.artifacts.append(report.rejects_file)
    report.verification = verify(conn, statements, plan, state.schema_of)
    for m in report.verification["missing"]:
        report.problem(f"missing after the run: {m}")
    if not state.dry_run:
        with conn.transaction():
            conn.execute(f"UPDATE {ctl}.runs SET finished_at = now(), status = %s WHERE run_id = %s",
                         ("done" if not report.problems else "done with problems", state.run_id))


def _export_rejects(state: _Run, conn) -> str:
    ctl = quote_ident(state.control)
    n = conn.execute(f"SELECT count(*) FROM {ctl}.rejects").fetchone()[0]
    if not n:
        return ""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = state.workdir / f"{'dry-run-' if state.dry_run else ''}rejects-{stamp}.jsonl"
    with open(path, "w", encoding="utf-8") as fh, conn.cursor(name=None) as cur:
        cur.execute(f"SELECT source, table_name, chunk_no, src_rowid, src_key, reason, row_data FROM {ctl}.rejects ORDER BY id")
        for r in cur:
            fh.write(json.dumps({"source": r[0], "table": r[1], "chunk": r[2], "rowid": r[3], "key": r[4],
                                 "reason": r[5], "row": r[6]}, ensure_ascii=False) + "\n")
    return str(path)
