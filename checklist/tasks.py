"""The one Celery task every job runs through.

`run_job(run_id)` takes a queued TaskRun, marks it running, calls the job kind's handler with a
JobContext (progress, log, cancel check, workdir), then writes the outcome in one transaction:
final state, evidence rows (files copied under MEDIA_ROOT with their sha256) and, on success, the
ticks the run earned, through the same action as a human tick. Progress and log go to the
database as the job runs, so any web process can show them.

A run whose worker dies stops sending heartbeats; `mark_lost_runs()` (called when a worker starts
and by beat, never by a read) marks it `lost` instead of leaving it `running` forever.
A redelivered message for a run that is no longer queued does nothing: re-running is the user's
decision, and the engine's steps resume where they stopped.
"""
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from checks.redact import scrub
from migration.safe_files import UnsafeFile, resolve_under_roots

from . import actions, audit, digests, lifeline, params as job_params
from .evidence import file_sha256
from .models import Evidence, Runbook, RunbookBinding, TaskRun

log = logging.getLogger(__name__)

LOG_LIMIT = 200_000  # characters of log kept on the run (the full log is also evidence)


class JobCancelled(Exception):
    pass


class JobInputError(Exception):
    """The job cannot start on what it was configured with; the message says why, in plain words."""


def app_private_files():
    """Files no job may ever read: the app's own SQLite database and its development key."""
    files = [Path(settings.VAR_DIR) / "dev_secret_key"]
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"] and str(db["NAME"]) not in ("", ":memory:"):
        files.append(Path(db["NAME"]))
    return files


def _safe(path, roots, what, must_exist=True):
    try:
        return resolve_under_roots(path, roots, forbidden=app_private_files(), what=what,
                                   must_exist=must_exist)
    except UnsafeFile as exc:
        raise JobInputError(str(exc)) from None


@dataclass
class JobResult:
    ok: bool
    summary: str = ""
    report: dict | None = None  # stored as the run's JSON report evidence
    artifacts: list = field(default_factory=list)  # paths of files to keep as evidence
    figures: dict = field(default_factory=dict)  # key figures: rows loaded, rejects, p95 ...
    error: str = ""  # plain words, shown to the user when ok is False
    # For kinds that earn their items one by one (success criteria, assess): item text -> passed.
    # Items left out are neither earned nor withdrawn. None: all bound items follow `ok`.
    item_outcomes: dict | None = None
    item_notes: dict = field(default_factory=dict)  # item text -> the note its earned tick gets


class JobContext:
    """What a handler gets: the run, its parameters, a workdir, and progress/log/cancel hooks."""

    def __init__(self, run, params, secrets=()):
        self.run = run
        self.runbook = run.runbook
        self.params = params
        self._secrets = [s for s in secrets if s]
        self._lines = []
        self._last_flush = 0.0
        self._progress = {}
        self._cancel = False
        self.workdir = Path(settings.JOB_WORKDIR) / f"runbook-{run.runbook_id}"
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # --- what handlers call ---------------------------------------------------------------
    def redact(self, text):
        return scrub(str(text), *self._secrets)

    def log(self, line):
        self._lines.append(f"{timezone.now():%H:%M:%S} {self.redact(line)}")
        self._maybe_flush()

    def progress(self, step=None, percent=None, rows=None, eta_seconds=None):
        for key, value in (("step", step), ("percent", percent), ("rows", rows),
                           ("eta_seconds", eta_seconds)):
            if value is not None:
                self._progress[key] = value
        self._maybe_flush()

    def should_cancel(self):
        self._maybe_flush()
        return self._cancel

    def check_cancel(self):
        if self.should_cancel():
            raise JobCancelled()

    def sources(self, must_exist=True):
        """The runbook's sources, each resolved and refused unless a regular file under
        SOURCE_ROOTS (never the app's own database); a rollback may restore a missing one."""
        return {s.name: _safe(s.path, settings.SOURCE_ROOTS, "source", must_exist)
                for s in self.runbook.sources.all()}

    def checked_file(self, path):
        """A file a check reads (env file, app spec), held to CHECK_FILE_ROOTS likewise."""
        return _safe(path, settings.CHECK_FILE_ROOTS, "checked file")

    def target_url(self):
        from .targets import target_url

        return target_url(self.runbook)

    # --- bookkeeping ------------------------------------------------------------------------
    def _maybe_flush(self, force=False):
        now = time.monotonic()
        if not force and now - self._last_flush < settings.JOB_PROGRESS_INTERVAL:
            return
        self._last_flush = now
        fields = dict(self._progress, heartbeat_at=timezone.now(), log=self.log_text())
        TaskRun.objects.filter(pk=self.run.pk).update(**fields)
        Runbook.objects.filter(pk=self.run.runbook_id).update(revision=F("revision") + 1)
        self._cancel = TaskRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()

    def log_text(self):
        text = "\n".join(self._lines)
        return text[-LOG_LIMIT:]


def group_file(run):
    """Where a command job notes its process group while it runs (see checklist/lifeline.py)."""
    return Path(settings.JOB_WORKDIR) / f"runbook-{run.runbook_id}" / f"run-{run.pk}.pgid"


def _handler(kind_name):
    from .jobs import get_kind

    module, _, name = get_kind(kind_name).handler.rpartition(".")
    return getattr(import_module(module), name)


def _heartbeat(run_id, stop):
    """Beat while the handler runs, even inside a long COPY that reports no progress."""
    while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
        try:
            TaskRun.objects.filter(pk=run_id, state=TaskRun.RUNNING).update(heartbeat_at=timezone.now())
        except Exception:  # the database went away; the run ends as lost or failed
            log.warning("heartbeat of run %s failed", run_id)
        finally:
            close_old_connections()


@shared_task(bind=True, acks_late=True, name="checklist.run_job")
def run_job(self, run_id):
    claimed = TaskRun.objects.filter(pk=run_id, state=TaskRun.QUEUED).update(
        state=TaskRun.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
        worker=self.request.hostname or socket.gethostname(), worker_pid=os.getpid(),
        celery_id=self.request.id or "",
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
        result = _handler(run.kind)(ctx)
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
    """Write the run's final state, its evidence and earned ticks in one transaction."""
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
        audit.record(f"job-{state}", actor=run.started_by, obj=locked, runbook=run.runbook,
                     after={"kind": run.kind, "summary": result.summary,
                            "error": locked.error, "evidence": [
                                {"name": n, "sha256": file_sha256(p)} for _, n, p in files]})
        earn(locked, ctx, result, state)
        if state == TaskRun.SUCCEEDED:
            from .jobs import get_kind

            hook = get_kind(run.kind).on_success
            if hook:
                module, _, name = hook.rpartition(".")
                getattr(import_module(module), name)(locked, run.started_by)
        # Every run re-reads the evidence behind the runbook's earned ticks (a file changed since
        # it was recorded no longer earns anything), before its own end is visible to anyone.
        for st in actions.verify_earned_evidence(run.runbook):
            log.warning("run #%s: withdrew the earned tick of item %s (evidence changed)",
                        run.pk, st.item_id)
    Runbook.objects.filter(pk=run.runbook_id).update(revision=F("revision") + 1)


def earn(run, ctx, result, state):
    """Tick the items a succeeded run earns, through the same rules as a human tick; a failed run
    withdraws the earned ticks of the items it would have earned. Kinds that decide item by item
    (`result.item_outcomes`) earn and withdraw each item on its own outcome."""
    from .models import ItemState

    items = list(run.items.all())
    # An item bound to a named part (a criterion, a trigger) follows that part's outcome; other
    # items of a judging kind follow the outcome the handler gave their text.
    parts = dict(RunbookBinding.objects.filter(runbook=run.runbook_id, kind=run.kind)
                 .values_list("item_id", "part"))
    key = {i.pk: parts.get(i.pk) or i.text for i in items}
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
                audit.record("job-lost", actor=run.started_by, obj=run, runbook=run.runbook,
                             after={"kind": run.kind, "worker": run.worker})
                Runbook.objects.filter(pk=run.runbook_id).update(revision=F("revision") + 1)
    return lost


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    hostname = getattr(sender, "hostname", None)
    try:
        count = mark_lost_runs(hostname=hostname)
        if count:
            log.warning("marked %d run(s) of an earlier worker on %s as lost", count, hostname)
    finally:
        close_old_connections()


@shared_task(name="checklist.mark_lost_runs")
def mark_lost_runs_task():
    return mark_lost_runs()


@shared_task(name="checklist.write_audit_digest")
def write_audit_digest():
    """Beat, hourly: a signed digest of the audit chain when anything was recorded since the last.
    Returns the digest file's name, or None when nothing changed."""
    path = digests.write("schedule", only_if_changed=True)
    return path.name if path else None


@shared_task(name="checklist.verify_evidence")
def verify_evidence_task():
    """Beat: re-hash the evidence behind every runbook's earned ticks and withdraw any tick whose
    file changed or vanished (pages only read; this is where the check writes)."""
    withdrawn = 0
    for runbook in Runbook.objects.filter(item_states__earned_run__isnull=False).distinct():
        withdrawn += len(actions.verify_earned_evidence(runbook))
    return withdrawn
