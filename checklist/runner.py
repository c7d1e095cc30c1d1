"""Running one job: claim the queued TaskRun, call its kind's handler, record how it ended.

`execute(run_id)` (the body of the `checklist.run_job` Celery task) marks the run running, beats
a heartbeat while the handler works, and hands the outcome to `finish()`, the one function that
says what happens after a run: evidence, final state and audit event (a failed run's announced,
checklist/announcements.py: deploychecks notifies), earned or withdrawn ticks,
the kind's own success step, the re-check of earned evidence, then the apps' run-end steps
(rollback triggers, performance baseline). Progress and log go to the database as the job runs,
so any web process can show them.

A run whose worker dies stops sending heartbeats; `mark_lost_runs()` (called when a worker starts
and by beat, never by a read) marks it `lost` instead of leaving it `running` forever.
A redelivered message for a run that is no longer queued does nothing: re-running is the user's
decision, and the engine's steps resume where they stopped.
"""
import json
import logging
import os
import shutil
import socket
import threading
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from migration.hashing import file_sha256

from . import actions, announcements, audit, changes, jobs, lifeline, params as job_params
from .job_context import JobCancelled, JobContext, JobInputError, JobResult, group_file
from .models import Evidence, ItemState, RunbookBinding, TaskRun

log = logging.getLogger(__name__)


def _heartbeat(run_id, stop):
    """Beat while the handler runs, even inside a long COPY that reports no progress."""
    while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
        try:
            TaskRun.objects.filter(pk=run_id, state=TaskRun.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # the database went away; the run ends as lost or failed
            log.warning("heartbeat of run %s failed", run_id)
        finally:
            close_old_connections()


def execute(run_id, hostname=None, celery_id=None):
    """Run the queued TaskRun `run_id` to its end on this worker (see the module's docstring)."""
    claimed = TaskRun.objects.filter(pk=run_id, state=TaskRun.QUEUED).update(
        state=TaskRun.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
        worker=hostname or socket.gethostname(), worker_pid=os.getpid(),
        celery_id=celery_id or "",
    )
    if not claimed:
        # Cancelled before it started, or a redelivery after the worker died: never re-run.
        TaskRun.objects.filter(pk=run_id, state=TaskRun.RUNNING).update(
            state=TaskRun.LOST, finished_at=timezone.now(),
            error="The worker running this job stopped; re-run it to resume.")
        return
    run = TaskRun.objects.select_related("runbook", "started_by").get(pk=run_id)
    # The parameters come from the run's row (checked when it was queued), never the message.
    params, secrets = job_params.from_storage(run.params)
    ctx = JobContext(run, params, secrets=secrets)
    ctx.log(f"{run.kind} started on {run.worker} by {run.started_by or 'system'}")
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(run.pk, stop), daemon=True)
    beat.start()
    try:
        result = jobs.get_kind(run.kind).handler(ctx)
    except JobCancelled:
        result = JobResult(ok=False, error="Cancelled on request.")
        state = TaskRun.CANCELLED
    except JobInputError as exc:
        result = JobResult(ok=False, error=ctx.redact(str(exc)))
        state = TaskRun.FAILED
    except SoftTimeLimitExceeded:
        result = JobResult(ok=False, error="The job ran past its time limit and was stopped.")
        state = TaskRun.FAILED
    except Exception as exc:  # any failure is shown to the user in plain words, not lost
        log.exception("job %s #%s failed", run.kind, run.pk)
        result = JobResult(ok=False, error=ctx.redact(f"{type(exc).__name__}: {exc}"))
        state = TaskRun.FAILED
    else:
        state = TaskRun.SUCCEEDED if result.ok else TaskRun.FAILED
    finally:
        stop.set()
    if state == TaskRun.FAILED and ctx.should_cancel():
        state = TaskRun.CANCELLED
    ctx.log(f"{run.kind} {state}: {result.summary or result.error}")
    finish(run, ctx, result, state)


def _store(run, name, source=None, data=None):
    """Copy one artifact (or bytes) into this run's own evidence folder; never overwrite."""
    folder = Path(settings.MEDIA_ROOT) / "evidence" / f"runbook-{run.runbook_id}" / f"run-{run.pk}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = folder / name
    n = 1
    while dest.exists():
        dest = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    if source is not None:
        shutil.copyfile(source, dest)
    else:
        dest.write_bytes(data)
    dest.chmod(0o600)
    return dest


def finish(run, ctx, result, state):
    """Write the run's final state, its evidence and earned ticks in one transaction; announce a
    failed run's audit event (the notifications); then, committed, the apps' run-end steps."""
    files = []
    report = result.report if result.report is not None else {"ok": result.ok}
    report_bytes = ctx.redact(json.dumps(report, indent=2, default=str)).encode("utf-8")
    files.append(("report", f"{run.kind}-report.json", _store(run, f"{run.kind}-report.json",
                                                               data=report_bytes)))
    for artifact in result.artifacts:
        artifact = Path(artifact)
        if artifact.is_file():
            files.append(("artifact", artifact.name, _store(run, artifact.name, source=artifact)))
    files.append(("log", f"{run.kind}.log",
                  _store(run, f"{run.kind}.log", data=ctx.log_text().encode("utf-8"))))
    media = Path(settings.MEDIA_ROOT)
    with transaction.atomic():
        locked = TaskRun.objects.select_for_update().get(pk=run.pk)
        for kind, name, path in files:
            Evidence.objects.create(run=locked, name=name, kind=kind,
                                    path=str(path.relative_to(media)), sha256=file_sha256(path),
                                    size=path.stat().st_size)
        if result.figures:
            Evidence.objects.create(run=locked, name="figures", kind="figures",
                                    figures=json.loads(ctx.redact(json.dumps(result.figures,
                                                                             default=str))))
        locked.state = state
        locked.finished_at = timezone.now()
        locked.error = "" if state == TaskRun.SUCCEEDED else (result.error or result.summary)
        locked.log = ctx.log_text()
        if state == TaskRun.SUCCEEDED:
            locked.percent = 100
        locked.save()
        event = audit.record(f"job-{state}", actor=run.started_by, obj=locked,
                             runbook=run.runbook,
                             after={"kind": run.kind, "summary": result.summary,
                                    "error": locked.error, "evidence": [
                                        {"name": n, "sha256": file_sha256(p)}
                                        for _, n, p in files]})
        if state in (TaskRun.FAILED, TaskRun.LOST):
            announcements.announce(event)  # deploychecks notifies the runbook's recipients
        earn(locked, ctx, result, state)
        if state == TaskRun.SUCCEEDED:
            on_success = jobs.get_kind(run.kind).on_success
            if on_success is not None:
                on_success(locked, run.started_by)
        # Every run re-reads the evidence behind the runbook's earned ticks (a file changed since
        # it was recorded no longer earns anything), before its own end is visible to anyone.
        for st in actions.verify_earned_evidence(run.runbook):
            log.warning("run #%s: withdrew the earned tick of item %s (evidence changed)",
                        run.pk, st.item_id)
    changes.run_changed(run)
    # Then, once all of the above is committed, what the other apps do when a run has ended
    # (registered in their AppConfig.ready(): deploychecks keeps the performance baseline and
    # evaluates the rollback triggers, deploychecks/jobs.py after_run). Each step reads the
    # committed evidence and must never undo the run's own record.
    for step in jobs.RUN_END_STEPS:
        transaction.on_commit(lambda step=step: step(locked))


def earn(run, ctx, result, state):
    """Tick the items a succeeded run earns, through the same rules as a human tick; a failed run
    withdraws the earned ticks of the items it would have earned. Kinds that decide item by item
    (`result.item_outcomes`) earn and withdraw each item on its own outcome."""
    items = list(run.items.all())
    # An item bound to a named part (a criterion, a trigger) follows that part's outcome; other
    # items of a judging kind follow the outcome the handler gave their key (or, for an item
    # without a key that a lead mapped by its words, their text).
    parts = dict(RunbookBinding.objects.filter(runbook=run.runbook_id, kind=run.kind)
                 .values_list("item_id", "part"))
    key = {i.pk: parts.get(i.pk) or i.key or i.text for i in items}
    if result.item_outcomes is not None:
        if state not in (TaskRun.SUCCEEDED, TaskRun.FAILED):
            return
        passed = [i for i in items if result.item_outcomes.get(key[i.pk]) is True]
        failed = [i for i in items if result.item_outcomes.get(key[i.pk]) is False]
    elif state == TaskRun.SUCCEEDED:
        passed, failed = items, []
    elif state == TaskRun.FAILED:
        passed, failed = [], items
    else:
        return  # cancelled or lost: the run proved nothing either way
    user = run.started_by
    for st in ItemState.objects.filter(runbook=run.runbook, item__in=passed).select_related("item"):
        if st.complete:
            continue
        try:
            actions.tick(user, st, note=result.item_notes.get(key[st.item_id], ""), run=run,
                         judged_passed=result.item_outcomes is not None)
        except actions.Refused as refused:
            ctx.log(f"not ticked: {st.item.text}: {refused}")
    for st in actions.withdraw_earned_by_failure(run, failed):
        ctx.log(f"withdrawn: {st.item.text}")


def mark_lost_runs(hostname=None):
    """Runs whose worker stopped beating (or, at a worker's start, that ran on this very host's
    earlier incarnation) become `lost`; return how many."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_LOST_AFTER_SECONDS)
    query = TaskRun.objects.filter(state=TaskRun.RUNNING, heartbeat_at__lt=stale)
    if hostname:
        query = TaskRun.objects.filter(state=TaskRun.RUNNING, worker=hostname) | query
    lost = 0
    for run in query.select_related("runbook", "started_by"):
        with transaction.atomic():
            n = TaskRun.objects.filter(pk=run.pk, state=TaskRun.RUNNING).update(
                state=TaskRun.LOST, finished_at=timezone.now(),
                error="The worker running this job stopped (killed or lost); re-run it to resume.")
            if n:
                lost += 1
                # A run marked lost leaves no process behind (its worker may be hung, not dead).
                if lifeline.kill_recorded_group(group_file(run)):
                    log.warning("killed the process group of lost run %s", run.pk)
                announcements.announce(audit.record(
                    "job-lost", actor=run.started_by, obj=run, runbook=run.runbook,
                    after={"kind": run.kind, "worker": run.worker}))
                changes.run_changed(run)
    return lost
