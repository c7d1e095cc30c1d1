"""The engine's steps as job kinds: thin handlers that read the runbook's sources and target,
call one engine step with the run's progress and cancel hooks, and hand back its report.
Django glue (like apps.py and management/): the engine itself imports nothing from here.

MigrationConfig.ready() registers KINDS; checklist/runner.py runs them and records progress,
evidence and earned ticks; each
runbook has one work folder, so a re-run after a kill resumes where the engine's control table
says it stopped.
"""
import sqlite3
from pathlib import Path

from checklist import actions, rules
from checklist.chunk_tasks import remote_for
from checklist.job_context import JobCancelled, JobResult
from checklist.jobs import JobKind, register

from . import steps
from .errors import Cancelled, InputError


class _Hooks:
    """Engine ProgressEvents → the run's progress bar and log."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __call__(self, event):
        if event.kind == "log":
            self.ctx.log(f"{event.level}: {event.message}" if event.level != "info" else event.message)
            return
        if event.kind == "table":
            self.ctx.log(f"table {event.table} done ({event.rows_done} rows so far)")
        percent = round(100 * event.fraction, 1) if event.fraction is not None else None
        step = event.step + (f" · {event.table}" if event.table else "")
        self.ctx.progress(step=step, percent=percent, rows=event.rows_done, eta_seconds=event.eta_s)


def _call(ctx, fn, cancellable=False, **kwargs):
    """Run one engine step; its report becomes the job's result."""
    if cancellable:
        kwargs["should_cancel"] = ctx.should_cancel
    try:
        report = fn(progress=_Hooks(ctx), **kwargs)
    except Cancelled:
        raise JobCancelled() from None
    except InputError as exc:  # unusable input: the engine's message names the file or URL
        return JobResult(ok=False, error=ctx.redact(str(exc)))
    except sqlite3.OperationalError:  # a SQLite query the cancel interrupted
        if cancellable and ctx.should_cancel():
            raise JobCancelled() from None
        raise
    problems = list(report.problems)
    return JobResult(
        ok=bool(report.ok),
        summary="; ".join(report.summary_lines()[:3]),
        report=report.to_dict(),
        artifacts=[Path(p) for p in report.artifacts],
        figures=_figures(report),
        error="" if report.ok else ctx.redact("; ".join(problems[:5]) or "The step found problems."),
    )


def _figures(report):
    """The key figures of a step, for the evidence summary and the success criteria."""
    if report.step == "run":
        return {"dry_run": report.dry_run, **report.totals}
    if report.step == "validate":
        tables = report.tables
        return {**report.totals,
                "rows_checked": report.totals.get("source_rows", 0),
                "mismatches": report.totals.get("differences", 0),
                "missing_rows": sum(max(0, t["source_rows"] - t["target_rows"]) for t in tables),
                "broken_references": sum(fk.get("new_count", 0) for fk in report.foreign_keys)}
    if report.step == "schema":
        return {"schema_sha256": report.schema_sha256, "tables": len(report.tables),
                "uuid_extension": report.uuid_extension,
                "applied": report.applied}
    if report.step == "backup":
        return {"files": len(report.files),
                "restore_test_ok": bool(report.restore_test.get("ok"))}
    if report.step == "rollback":
        return {"dry_run": report.dry_run, "dropped": len(report.dropped),
                "dependants": len(report.dependants), "restored": len(report.restored)}
    if report.step == "assess":
        return {"sources": len(report.sources), "conflicts": len(report.conflicts),
                **{k: v for k, v in report.estimate.items() if isinstance(v, (int, float))}}
    return {}


def _workdir(ctx):
    return ctx.workdir / "engine"


def backup_job(ctx):
    return _call(ctx, steps.backup, sources=ctx.sources(), workdir=_workdir(ctx), cancellable=True)


def restore_test_job(ctx):
    """Restore the newest backup into a scratch folder, checksums verified."""
    return _call(ctx, steps.restore, manifest_path=None, dest_dir=ctx.workdir / "restore-test",
                 workdir=_workdir(ctx))


# What each assess item (by its key) claims, judged on its own from the report (as the success
# criteria are):
# a source with broken references fails the run but still has its volume estimated.
ASSESS_ITEMS = {
    "assess-databases-py-executed-and-report-reviewed":
        lambda r: bool(r.get("sources")),
    "table-conflicts-identified-and-resolved":
        lambda r: bool(r.get("sources")) and all(c.get("resolved") for c in r.get("conflicts", [])),
    "data-volume-and-migration-time-estimated":
        lambda r: (r.get("estimate") or {}).get("rows") is not None
        and (r.get("estimate") or {}).get("seconds") is not None,
    "storage-requirements-calculated":
        lambda r: bool((r.get("estimate") or {}).get("postgres_bytes")),
}


def assess_job(ctx):
    result = _call(ctx, steps.assess, sources=ctx.sources(), workdir=_workdir(ctx),
                   cancellable=True)
    report = result.report or {}
    result.item_outcomes = {key: bool(judge(report)) for key, judge in ASSESS_ITEMS.items()}
    return result


def schema_outcomes(ok, report):
    """The schema job's items (by key): the constraints and indexes verified when the step passed; the
    UUID extension only when the target's pg_extension really holds it after the apply."""
    return {"all-constraints-and-indexes-verified": bool(ok),
            "uuid-extension-enabled-in-postgresql": bool(ok) and bool(
                (report or {}).get("uuid_extension"))}


def schema_job(ctx):
    result = _call(ctx, steps.schema, sources=ctx.sources(), target_url=ctx.target_url(),
                   workdir=_workdir(ctx), apply=True, cancellable=True)
    result.item_outcomes = schema_outcomes(result.ok, result.report)
    return result


def _approved_run(ctx, dry_run):
    """The run step bound to the standing schema approval: the engine refuses unless
    unified_schema.sql is that very file, and the evidence records the sha256 and who approved."""
    approval = rules.schema_approval(ctx.runbook)
    if approval is None:  # withdrawn between the start and now
        return JobResult(ok=False, error="No standing approval of unified_schema.sql: a lead must "
                                         "approve the schema before the migration runs.")
    ctx.log(f"applying unified_schema.sql sha256 {approval.sha256} approved by "
            f"{approval.lead.get_username()} (approval #{approval.pk})")
    result = _call(ctx, steps.run, sources=ctx.sources(), target_url=ctx.target_url(),
                   workdir=_workdir(ctx), dry_run=dry_run, cancellable=True,
                   schema_sha256=approval.sha256, remote=None if dry_run else remote_for(ctx.run))
    bound = {"id": approval.pk, "sha256": approval.sha256, "lead": approval.lead.get_username(),
             "approved_at": approval.created_at.isoformat()}
    result.report = {**(result.report or {"ok": False, "error": result.error}),
                     "schema_approval": bound}
    result.figures = {**result.figures, "schema_sha256": approval.sha256,
                      "schema_approval_id": approval.pk}
    return result


def dry_run_job(ctx):
    return _approved_run(ctx, dry_run=True)


def migrate_job(ctx):
    return _approved_run(ctx, dry_run=False)


def validate_job(ctx):
    return _call(ctx, steps.validate, sources=ctx.sources(), target_url=ctx.target_url(),
                 workdir=_workdir(ctx), cancellable=True)


def rollback_job(ctx):
    # A source removed since (cleanup --remove-sources) is put back, so it need not exist.
    return _call(ctx, steps.rollback, sources=ctx.sources(must_exist=False), target_url=ctx.target_url(),
                 workdir=_workdir(ctx))


def rollback_rehearsal_job(ctx):
    """The rollback, rehearsed: backups verified, drops run and rolled back; nothing changes."""
    return _call(ctx, steps.rollback, sources=ctx.sources(must_exist=False), target_url=ctx.target_url(),
                 workdir=_workdir(ctx), dry_run=True)


def cleanup_job(ctx):
    return _call(ctx, steps.cleanup, sources=ctx.sources(), workdir=_workdir(ctx), cancellable=True)


KINDS = (
    JobKind("backup", "Back up and verify the SQLite files", backup_job,
            description="Online backup, integrity check, manifest with sha256, restore test."),
    JobKind("restore-test", "Restore test", restore_test_job,
            description="Restore the latest backup to a scratch folder and compare."),
    JobKind("assess", "Assess the SQLite databases", assess_job),
    JobKind("schema", "Generate the unified PostgreSQL schema", schema_job,
            needs_target=True, on_success=actions.void_stale_schema_approval),
    JobKind("dry-run", "Dry-run the migration", dry_run_job, needs_target=True,
            needs_schema_approval=True),
    JobKind("migrate", "Run the migration (COPY)", migrate_job,
            needs_target=True, time_limit=4 * 3600, needs_schema_approval=True),
    JobKind("validate", "Validate every row", validate_job, needs_target=True,
            time_limit=4 * 3600),
    JobKind("rollback", "Roll back the migration", rollback_job,
            needs_target=True, description="Restore the SQLite files and drop exactly what the "
                                           "migration created (refused if anything else depends on it)."),
    JobKind("rollback-rehearsal", "Rehearse the rollback", rollback_rehearsal_job,
            needs_target=True, description="Verify the backups and run the drops in a transaction "
                                           "that is rolled back: proves the rollback, changes nothing."),
    JobKind("cleanup", "Archive and clean up", cleanup_job),
)


def register_kinds():
    for kind in KINDS:
        register(kind)
