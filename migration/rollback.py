"""The rollback step: put the SQLite files back and remove what the migration created.

Files come back from a backup manifest, every checksum verified before anything is touched;
the file being replaced is kept beside it (``<file>.pre-rollback-<time>``), never deleted.
In the target, the schemas the migration created (recorded in ``_pgmigrate.created``) are
dropped, then the control schema; a schema that existed before the migration keeps
everything that was not the migration's.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import psycopg

from .backup import latest_manifest, manifest_file, restore_files, verify_backups
from .ddl_names import quote_ident
from .errors import InputError
from .plan import Plan
from .progress import Reporter
from .reports import RollbackReport, write_report
from .schema import PLAN_FILE
from .target import CONTROL_SCHEMA, connect, describe, schema_exists


def rollback_step(sources: dict, target_url: Optional[str], workdir: Path, manifest_path: Optional[Path] = None,
                  progress=None) -> RollbackReport:
    """Restore the sources from the backup and drop the migration's objects from the target."""
    workdir = Path(workdir)
    manifest_path = manifest_file(manifest_path) if manifest_path else latest_manifest(workdir)
    report = RollbackReport(manifest=str(manifest_path))
    rep = Reporter("rollback", progress, log_path=workdir / "logs" / "rollback.log")
    rep.start(message="verifying the backup")
    manifest, problems = verify_backups(manifest_path)
    if problems:
        raise InputError("refusing to roll back: " + "; ".join(problems))
    names = set(sources) if sources else {f["name"] for f in manifest["files"]}
    unknown = names - {f["name"] for f in manifest["files"]}
    if unknown:
        raise InputError(f"{manifest_path}: no backup of {sorted(unknown)}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    destinations = {}
    for f in manifest["files"]:
        if f["name"] not in names:
            continue
        dest = Path(sources[f["name"]]) if sources and f["name"] in sources else Path(f["source"])
        destinations[f["name"]] = dest
        for suffix in ("", "-wal", "-shm", "-journal"):
            current = dest.with_name(dest.name + suffix)
            if current.exists():
                aside = current.with_name(f"{current.name}.pre-rollback-{stamp}")
                current.rename(aside)
                rep.log(f"kept the current {current} as {aside}")
    report.restored = restore_files(manifest_path, destinations)
    for r in report.restored:
        rep.table_done(r["name"], f"restored {r['path']}")
    if target_url:
        report.target_actions = _drop_target_objects(target_url, workdir)
    else:
        report.warn("no --target given: the PostgreSQL side was left as it is")
    rep.finish()
    report.finish()
    write_report(report, workdir)
    return report


def _drop_target_objects(url: str, workdir: Path) -> list:
    actions = []
    plan = Plan.load(workdir / PLAN_FILE) if (workdir / PLAN_FILE).exists() else None
    conn = connect(url, autocommit=True, purpose="rollback")
    try:
        with conn.transaction():
            created = set()
            if schema_exists(conn, CONTROL_SCHEMA):
                created = {r[0] for r in conn.execute(
                    f"SELECT object_name FROM {CONTROL_SCHEMA}.created WHERE object_kind = 'schema'")}
            for schema in sorted(created):
                if schema_exists(conn, schema):
                    conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
                    actions.append(f"dropped schema {schema} (created by the migration) and everything in it")
            if plan is not None:
                for tp in plan.tables:
                    if tp.schema in created or not schema_exists(conn, tp.schema):
                        continue
                    conn.execute(f"DROP TABLE IF EXISTS {quote_ident(tp.schema)}.{quote_ident(tp.target)} CASCADE")
                    actions.append(f"dropped table {tp.schema}.{tp.target} (its schema existed before the migration)")
            if schema_exists(conn, CONTROL_SCHEMA):
                conn.execute(f"DROP SCHEMA {CONTROL_SCHEMA} CASCADE")
                actions.append(f"dropped the control schema {CONTROL_SCHEMA} (run state, progress, rejects)")
        if not actions:
            actions.append("nothing to drop: the target holds nothing the migration created")
    except psycopg.Error as exc:
        raise describe(url, exc, "rolling back the target") from None
    finally:
        conn.close()
    return actions
