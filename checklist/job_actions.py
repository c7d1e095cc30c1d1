"""Starting and cancelling job runs: actions like those of actions.py (rules asked under the
runbook's lock, the change and its audit event in one transaction, refusals audited).

Every start goes through `start_job()`, whether from the Run button, the API or
`manage.py run_job`: it checks the rules, records a queued TaskRun and its audit event, and
queues the `checklist.run_job` Celery task once that commits; a worker does the rest
(checklist/runner.py).
"""
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import audit, changes, params as job_params, rules
from .actions import Refused, atomic_action, lock_runbook, require
from .jobs import get_kind, items_for, schema_file_sha256
from .models import ItemState, RunbookChange, TaskRun
from .tasks import run_job


def start_job(user, runbook, kind_name, params=None):
    """Queue a job on a runbook, through the same rules as a tick. Returns the TaskRun.

    `params` are checked against the kind's declared parameters (checklist/params.py): anything
    else is refused (400, or 403 for a lead-only parameter) with a 'denied' audit event."""
    if not isinstance(kind_name, str):
        raise Refused(rules.Decision(False, "'kind' must be the name of a job kind.", 400))
    return _start(user, runbook, get_kind(kind_name), params)


@atomic_action
def _start(user, runbook, kind, params):
    runbook = lock_runbook(runbook.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    items = items_for(runbook, kind.name)
    where = {"obj": runbook, "runbook": runbook}
    # Who first, then what was passed (a bad request is 400 whatever the runbook's state), then
    # whether the runbook is ready for this job.
    require(rules.can_work(user), user, f"job:{kind.name}", **where)
    params, decision = job_params.validate(user, kind, params)
    require(decision, user, f"job:{kind.name}", **where)
    require(rules.can_run_job(user, runbook, kind, items, facts), user, f"job:{kind.name}", **where)
    if kind.needs_schema_approval:
        require(rules.can_apply_schema(runbook, schema_file_sha256(runbook)), user,
               f"job:{kind.name}", **where)
    try:
        with transaction.atomic():  # the database allows one active run per kind and runbook
            run = TaskRun.objects.create(runbook=runbook, kind=kind.name, started_by=user,
                                         params=job_params.for_storage(kind, params))
    except IntegrityError:
        require(rules.Decision(False, f"A {kind.title.lower()} run is already queued or running "
                                     "on this runbook.", 409), user, f"job:{kind.name}", **where)
    run.items.set(items)
    changes.record(runbook, RunbookChange.RUN, run=run,
                   states=ItemState.objects.filter(runbook=runbook, item__in=items))
    audit.record("job-start", actor=user, obj=run, runbook=runbook,
                 after={"kind": kind.name, "params": job_params.shown(run.params),
                        "items": [i.pk for i in items]})
    # Queue only once the run is committed, so the worker always finds it.
    transaction.on_commit(lambda: _enqueue(run, kind))
    return run


def _enqueue(run, kind):
    try:
        # The message carries the run id only: broker files and queues never hold parameters.
        result = run_job.apply_async(args=[run.pk],
                                     soft_time_limit=kind.time_limit,
                                     time_limit=kind.time_limit + 30)
    except Exception as exc:  # the broker is down: say so on the run, lose nothing
        TaskRun.objects.filter(pk=run.pk).update(
            state=TaskRun.FAILED, finished_at=timezone.now(),
            error=f"Could not queue the job: the task broker is unreachable ({type(exc).__name__}).")
        return
    TaskRun.objects.filter(pk=run.pk).update(celery_id=result.id)


@atomic_action
def cancel_run(user, run):
    """Ask a queued or running job to stop; a queued one is cancelled at once."""
    lock_runbook(run.runbook_id)
    run = TaskRun.objects.select_for_update().select_related("runbook").get(pk=run.pk)
    require(rules.can_cancel_run(user, run), user, "job-cancel", obj=run, runbook=run.runbook)
    if run.state == TaskRun.QUEUED:
        run.state, run.finished_at = TaskRun.CANCELLED, timezone.now()
        run.error = f"Cancelled by {user.get_username()} before it started."
    run.cancel_requested = True
    run.save()
    audit.record("job-cancel", actor=user, obj=run, runbook=run.runbook,
                 after={"kind": run.kind, "state": run.state})
    changes.record(run.runbook, RunbookChange.RUN, run=run,
                   states=ItemState.objects.filter(runbook_id=run.runbook_id, item__runs=run))
    return run
