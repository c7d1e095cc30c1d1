"""The rollback step: put the SQLite files back and remove what the migration created.

Files come back from a backup manifest, every checksum verified before anything is touched;
the file being replaced is kept beside it (``<file>.pre-rollback-<time>``), never deleted.
In the target, exactly the objects the control table ``_pgmigrate.created`` records (what
`schema --apply` and the run created: schemas, tables, views, indexes, constraints, sequences,
types, extensions) are dropped, then the control schema -- never with CASCADE. An object that
existed before the migration is not in that table, so it survives with its rows. If anything
else depends on what would be dropped (a view someone made on a migrated table, a table added
to a migrated schema), PostgreSQL refuses the drop; the rollback then changes nothing, neither
in the target nor on disk, and its report lists the dependants.

``dry_run`` rehearses all of it: the backup is verified and the destinations checked, the drops
run in a transaction that is always rolled back, and the report says what would be restored and
dropped and that nothing else depends on it.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import psycopg

from .backup import latest_manifest, manifest_file, restore_files, verify_backups
from .ddl_names import quote_ident
from .errors import InputError
from .progress import Reporter
from .reports import RollbackReport, end_step
from .target import CONTROL_SCHEMA, connect, target_error, error_text, schema_exists

# A rollback waits this long for a lock on an object it drops, then gives up (and changes nothing)
# rather than queue behind a long query with every later query queued behind it.
LOCK_TIMEOUT = "10s"


def rollback_step(sources: dict, target_url: Optional[str], workdir: Path, manifest_path: Optional[Path] = None,
                  progress=None, dry_run: bool = False) -> RollbackReport:
    """Restore the sources from the backup and drop the migration's objects (or rehearse it)."""
    workdir = Path(workdir)
    manifest_path = manifest_file(manifest_path) if manifest_path else latest_manifest(workdir)
    report = RollbackReport(manifest=str(manifest_path), dry_run=dry_run)
    rep = Reporter("rollback", progress,
                   log_path=workdir / "logs" / ("rollback-rehearsal.log" if dry_run else "rollback.log"))
    rep.start(message="verifying the backup")
    manifest, problems = verify_backups(manifest_path)
    if problems:
        raise InputError("refusing to roll back: " + "; ".join(problems))
    names = set(sources) if sources else {f["name"] for f in manifest["files"]}
    unknown = names - {f["name"] for f in manifest["files"]}
    if unknown:
        raise InputError(f"{manifest_path}: no backup of {sorted(unknown)}")
    destinations = {}
    for f in manifest["files"]:
        if f["name"] in names:
            destinations[f["name"]] = Path(sources[f["name"]]) if sources and f["name"] in sources else Path(f["source"])
    conn = None
    if target_url:
        conn = connect(target_url, autocommit=False, purpose="rollback")
    else:
        report.warn("no --target given: the PostgreSQL side was left as it is")
    try:
        if conn is not None:
            refused = _drop_target_objects(conn, target_url, report, rep)
            if refused or dry_run:
                conn.rollback()
            if refused:
                report.problem("refused: other objects depend on what the migration created, so nothing was "
                               "dropped or restored; drop or move them first: " + "; ".join(report.dependants))
                return _done(report, rep, workdir)
        if dry_run:
            _rehearse_restore(manifest, destinations, report, rep)
        else:
            _restore(manifest_path, destinations, report, rep)
        if conn is not None and not dry_run:
            conn.commit()
            report.target_actions = [f"dropped {d}" for d in report.dropped] or [
                "nothing to drop: the target holds nothing the migration created"]
        elif conn is not None:
            report.target_actions = [f"would drop {d}" for d in report.dropped] or [
                "nothing to drop: the target holds nothing the migration created"]
            report.target_actions.append("no other object depends on them (the drops ran in a transaction "
                                         "that was rolled back)")
    except psycopg.Error as exc:
        raise target_error(target_url, exc, "rolling back the target (nothing was dropped)") from None
    finally:
        if conn is not None:
            conn.close()
    return _done(report, rep, workdir)


def _done(report: RollbackReport, rep: Reporter, workdir: Path) -> RollbackReport:
    return end_step(report, workdir, rep)


def _restore(manifest_path: Path, destinations: dict, report: RollbackReport, rep: Reporter) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for dest in destinations.values():
        for suffix in ("", "-wal", "-shm", "-journal"):
            current = dest.with_name(dest.name + suffix)
            if current.exists():
                aside = current.with_name(f"{current.name}.pre-rollback-{stamp}")
                current.rename(aside)
                rep.log(f"kept the current {current} as {aside}")
    report.restored = restore_files(manifest_path, destinations)
    for r in report.restored:
        rep.table_done(r["name"], f"restored {r['path']}")


def _rehearse_restore(manifest: dict, destinations: dict, report: RollbackReport, rep: Reporter) -> None:
    """What a restore would do, and whether it could: the backups verified, the folders writable."""
    for f in manifest["files"]:
        if f["name"] not in destinations:
            continue
        dest = destinations[f["name"]]
        report.restored.append({"name": f["name"], "path": str(dest), "sha256": f["sha256"], "rehearsal": True})
        if not os.access(dest.parent, os.W_OK | os.X_OK):
            report.problem(f"{dest}: cannot be restored: its folder {dest.parent} is not writable")
        rep.table_done(f["name"], f"would restore {dest} (backup sha256 verified)")


# -- the target ------------------------------------------------------------------------------------

# Drop order: what depends on others first. Constraints and indexes are dropped on their own only
# when their table survives (a pre-existing table the migration added a key or index to).
_ORDER = ("view", "constraint", "index", "table", "sequence", "type", "schema", "extension")


def _created(conn) -> list[dict]:
    """The control table's records that still name an existing object, newest first."""
    ctl = quote_ident(CONTROL_SCHEMA)
    cols = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'created'",
        (CONTROL_SCHEMA,))}
    extra = "object_schema, object_ident, object_table" if "object_ident" in cols else "'', '', ''"
    order = "seq DESC" if "seq" in cols else "created_at DESC"
    rows = conn.execute(f"SELECT object_kind, object_name, {extra} FROM {ctl}.created ORDER BY {order}").fetchall()
    out = []
    for kind, name, schema, ident, table in rows:
        if kind == "schema" and not ident:  # recorded before objects carried their own columns
            schema, ident = name, name
        out.append({"kind": kind, "name": name, "schema": schema, "ident": ident, "table": table})
    return [o for o in out if _exists(conn, o)]


def _exists(conn, o: dict) -> bool:
    k = o["kind"]
    if k == "schema":
        return schema_exists(conn, o["ident"])
    if k == "extension":
        return conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (o["ident"],)).fetchone() is not None
    if k == "type":
        return conn.execute("SELECT to_regtype(%s)", (_q(o["schema"], o["ident"]),)).fetchone()[0] is not None
    if k == "constraint":
        return conn.execute(
            "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
            (_q(o["schema"], o["table"]), o["ident"])).fetchone() is not None
    return conn.execute("SELECT to_regclass(%s)", (_q(o["schema"], o["ident"]),)).fetchone()[0] is not None


def _q(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}" if schema else quote_ident(name)


def _statements(objects: list[dict]) -> list[tuple[str, list[str]]]:
    """(SQL, [what it drops]) in drop order; several objects of a kind go in one statement, so
    dependencies among the migration's own objects never block the drop."""
    tables = {(o["schema"], o["ident"]) for o in objects if o["kind"] == "table"}
    out = []
    for kind in _ORDER:
        mine = [o for o in objects if o["kind"] == kind]
        if kind in ("constraint", "index", "sequence"):
            mine = [o for o in mine if (o["schema"], o["table"]) not in tables]  # go with their table
        if not mine:
            continue
        if kind == "constraint":
            for o in mine:
                out.append((f"ALTER TABLE {_q(o['schema'], o['table'])} DROP CONSTRAINT {quote_ident(o['ident'])}",
                            [f"constraint {o['ident']} on {o['schema']}.{o['table']}"]))
            continue
        names = [quote_ident(o["ident"]) if kind in ("schema", "extension") else _q(o["schema"], o["ident"])
                 for o in mine]
        what = [f"{kind} {o['ident'] if kind in ('schema', 'extension') else o['schema'] + '.' + o['ident']}"
                + (" (created by the migration)" if kind == "schema" else "") for o in mine]
        exists = " IF EXISTS" if kind in ("index", "sequence") else ""  # may have gone with a constraint
        out.append((f"DROP {kind.upper()}{exists} {', '.join(names)}", what))
    return out


def _drop_target_objects(conn, url: str, report: RollbackReport, rep: Reporter) -> bool:
    """Drop (inside the caller's open transaction) what the migration created; True if refused."""
    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    if not schema_exists(conn, CONTROL_SCHEMA):
        return False
    objects = _created(conn)
    control = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname", (CONTROL_SCHEMA,))]
    statements = _statements(objects)
    if control:
        statements.append((f"DROP TABLE {', '.join(_q(CONTROL_SCHEMA, t) for t in control)}", []))
    statements.append((f"DROP SCHEMA {quote_ident(CONTROL_SCHEMA)}",
                       [f"the control schema {CONTROL_SCHEMA} (run state, progress, rejects)"]))
    for sql, what in statements:
        try:
            conn.execute("SAVEPOINT pgm_drop")
            conn.execute(sql)
            conn.execute("RELEASE SAVEPOINT pgm_drop")
        except psycopg.errors.DependentObjectsStillExist as exc:
            conn.execute("ROLLBACK TO SAVEPOINT pgm_drop")
            detail = (exc.diag.message_detail or error_text(exc)).splitlines()
            report.dependants += [d.strip().rstrip(".") for d in detail if d.strip()]
            rep.log(f"refused: {sql}: {'; '.join(detail)}", "error")
            return True
        report.dropped += what
        for w in what:
            rep.log(f"dropped {w}")
    return False
