"""The assess step: what is in the sources, what will not fit PostgreSQL, how long and how big.

For every source: tables, columns and declared types, row counts, size, indexes, foreign keys
and their violations (``PRAGMA foreign_key_check``), values that do not fit their declared
type, and the things a migration cannot carry silently (views, triggers, generated columns,
WITHOUT ROWID tables, virtual tables). Across sources: tables with the same name (conflicts).
The load time is estimated from a measured sample of the real load query; the PostgreSQL
storage from the sample's row width.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from . import fastpath
from .catalog import qi
from .plan import find_conflicts
from .profile import misfit_samples, misfits
from .progress import Reporter
from .reports import AssessReport, end_step
from .schema import read_sources
from .hashing import file_sha256
from .sources import SourceError, open_source
from .typemap import choose_type

SAMPLE_ROWS = 20_000
# Measured on the reference machine (2 cores): PostgreSQL ingests COPY text at about this rate.
INGEST_BYTES_PER_S = 120e6
TUPLE_OVERHEAD = 28  # heap tuple header and line pointer
INDEX_ENTRY_OVERHEAD = 16


def _sample(con, table, cols) -> tuple[int, int, float]:
    """(rows, COPY bytes, seconds) formatting a sample with the real load query."""
    fastpath.register_functions(con)
    line, guard = fastpath.copy_line(cols)
    ok = "1" if guard is None else f"CASE WHEN {guard} THEN 1 ELSE 0 END"
    t0 = time.perf_counter()
    n, size = con.execute(
        f"SELECT count(*), sum(length(CAST(line AS BLOB))) FROM (SELECT CASE WHEN {ok} THEN {line} END AS line "
        f"FROM {qi(table.name)} LIMIT {SAMPLE_ROWS})").fetchone()
    return n or 0, size or 0, time.perf_counter() - t0


def assess_step(sources: dict, workdir: Path, progress=None, busy_timeout: float = 5.0, workers: int = 2,
                should_cancel=None) -> AssessReport:
    """Describe the sources and what migrating them involves (see the module docstring)."""
    workdir = Path(workdir)
    report = AssessReport()
    rep = Reporter("assess", progress, should_cancel, log_path=workdir / "logs" / "assess.log")
    rep.start(tables_total=len(sources), message=f"assessing {len(sources)} files")
    catalogs, profiles, _ = read_sources(sources, busy_timeout, rep, workdir)
    total = {"rows": 0, "format_s": 0.0, "copy_bytes": 0.0, "pg_bytes": 0.0}
    for cat in catalogs:
        path = Path(cat.path)
        con = open_source(path, busy_timeout=busy_timeout)
        rep.watch(con)
        try:
            check = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
            if check != ["ok"]:
                raise SourceError(f"{path}: is corrupt (quick_check: {'; '.join(check[:3])})")
            src = {"name": cat.name, "path": str(path), "size": cat.size, "sha256": file_sha256(path),
                   "page_size": cat.page_size, "pages": cat.page_count, "free_pages": cat.freelist_count,
                   "journal_mode": cat.journal_mode, "encoding": cat.encoding, "user_version": cat.user_version,
                   "tables": [], "views": [{"name": n, "sql": s} for n, s in cat.views],
                   "triggers": [{"name": n, "table": t, "sql": s} for n, t, s in cat.triggers],
                   "virtual_tables": [{"name": n, "sql": s} for n, s in cat.virtual_tables],
                   "shadow_tables": cat.shadow_tables}
            for t in cat.tables:
                rep.check_cancel()
                src["tables"].append(_assess_table(con, cat, t, profiles.get((cat.name, t.name)), report, total))
            for n, s in cat.views:
                report.warn(f"{cat.name}: view {n} (translated by the schema step where possible)")
            for n, t, s in cat.triggers:
                report.warn(f"{cat.name}: trigger {n} on {t} is not migrated (SQLite trigger SQL has no direct "
                            f"PostgreSQL equivalent)")
            for n, s in cat.virtual_tables:
                report.warn(f"{cat.name}: virtual table {n} is not migrated ({s.split('USING')[-1].strip()[:40]})")
            report.sources.append(src)
        finally:
            con.close()
        rep.table_done(cat.name)
    for c in find_conflicts(catalogs):
        # The schema step gives every source its own PostgreSQL schema, so a table name held by
        # several sources is resolved by construction: reported, not a problem.
        c["resolved"] = True
        report.conflicts.append(c)
        report.warn(f"conflict: table {c['table']} is in {', '.join(c['sources'])} ({c['kind']}); "
                    f"resolved by the schema step: {c['resolution']}")
    par = max(1, workers)
    load_s = (total["format_s"] + total["copy_bytes"] / INGEST_BYTES_PER_S) / par
    report.estimate = {
        "rows": total["rows"],
        "seconds": round(load_s, 1),
        "copy_bytes": int(total["copy_bytes"]),
        "postgres_bytes": int(total["pg_bytes"] * 1.2),
        "basis": (f"formatting time measured on a sample of up to {SAMPLE_ROWS} rows per table with the real load "
                  f"query, plus COPY text at {INGEST_BYTES_PER_S / 1e6:.0f} MB/s into PostgreSQL, over {par} workers; "
                  f"storage = rows x (measured row width + {TUPLE_OVERHEAD} bytes) + keys and indexes "
                  f"({INDEX_ENTRY_OVERHEAD} bytes + key width per entry), plus 20% for page fill"),
    }
    return end_step(report, workdir, rep)


def _assess_table(con, cat, t, prof, report: AssessReport, total: dict) -> dict:
    key = f"{cat.name}.{t.name}"
    entry = {"name": t.name, "rows": t.row_count, "without_rowid": t.without_rowid, "strict": t.strict,
             "autoincrement": t.autoincrement, "primary_key": t.pk, "columns": [], "indexes": [],
             "foreign_keys": [], "foreign_key_violations": [], "checks": [s for _, s in t.checks],
             "misfits": [], "generated_columns": [c.name for c in t.columns if c.is_generated]}
    cols = []
    for c in t.columns:
        cp = prof.columns.get(c.name) if prof else None
        entry["columns"].append({"name": c.name, "declared_type": c.declared_type, "affinity": c.affinity,
                                 "notnull": c.notnull, "default": c.default, "pk": c.pk, "hidden": c.hidden,
                                 "generated": c.generated, "collation": c.collation,
                                 "checks": [s for _, s in c.checks],
                                 "storage": {"null": cp.nulls, "integer": cp.ints, "real": cp.reals, "text": cp.texts,
                                             "blob": cp.blobs} if cp else None})
        if cp is not None:
            bad, what = misfits(c, cp)
            if bad:
                samples = misfit_samples(con, t, c)
                entry["misfits"].append({"column": c.name, "count": bad, "what": what, "samples": samples})
                report.problem(f"{key}.{c.name}: {bad} {what} (e.g. {samples[:1]})")
            if cp.with_nul:
                report.problem(f"{key}.{c.name}: {cp.with_nul} values hold NUL characters")
        if not c.is_generated:
            ct = choose_type(c, cp)
            cols.append(fastpath.ColumnSpec(source=c.name, target=c.name, kind=ct.kind, params=ct.params,
                                             notnull=c.notnull or c.pk > 0, always_int=c.name == t.rowid_alias))
    for idx in t.indexes:
        entry["indexes"].append({"name": idx.name, "unique": idx.unique, "partial": idx.partial,
                                 "parts": idx.parts, "where": idx.where, "expression": idx.has_expressions})
    for fk in t.foreign_keys:
        entry["foreign_keys"].append({"columns": fk.columns, "parent": fk.ref_table, "parent_columns": fk.ref_columns,
                                      "on_delete": fk.on_delete, "on_update": fk.on_update})
    try:
        violations = con.execute(f"PRAGMA foreign_key_check({qi(t.name)})").fetchall()
    except sqlite3.OperationalError as exc:  # e.g. "foreign key mismatch": the parent key is not unique
        violations = []
        report.problem(f"{key}: foreign keys cannot be checked: {exc}")
    if violations:
        by_parent: dict = {}
        for _, rowid, parent, fkid in violations:
            by_parent.setdefault(parent, []).append(rowid)
        for parent, rowids in by_parent.items():
            entry["foreign_key_violations"].append({"parent": parent, "count": len(rowids), "rowids": rowids[:10]})
            report.problem(f"{key}: {len(rowids)} rows reference missing {parent} rows (rowids {rowids[:5]})")
    if t.without_rowid:
        report.warn(f"{key}: WITHOUT ROWID table (loaded in key order, in one transaction)")
    if entry["generated_columns"]:
        report.warn(f"{key}: generated columns {entry['generated_columns']} (re-created as STORED where translatable)")
    if t.parse_error:
        report.warn(f"{key}: {t.parse_error}")
    if t.row_count and cols:
        n, size, secs = _sample(con, t, cols)
        width = size / n if n else 0
        total["rows"] += t.row_count
        total["format_s"] += secs * t.row_count / max(n, 1)
        total["copy_bytes"] += width * t.row_count
        keys = (1 if t.pk else 0) + len(t.uniques) + len(t.indexes)
        total["pg_bytes"] += t.row_count * (width + TUPLE_OVERHEAD + keys * (INDEX_ENTRY_OVERHEAD + 8))
        entry["sample"] = {"rows": n, "copy_bytes_per_row": round(width, 1), "seconds": round(secs, 4)}
    return entry
