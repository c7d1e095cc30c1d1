"""The app's Celery tasks (and nothing else): every job runs through `run_job`; beat runs the
lost-run sweep, the audit digest and the evidence re-check. The work itself is in
`checklist/runner.py`, `checklist/digests.py` and `checklist/actions.py`.
"""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from . import actions, digests, runner
from .models import Runbook

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, name="checklist.run_job")
def run_job(self, run_id):
    """Run one queued job (the message carries its id only; see runner.execute)."""
    runner.execute(run_id, hostname=self.request.hostname, celery_id=self.request.id)


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    hostname = getattr(sender, "hostname", None)
    try:
        count = runner.mark_lost_runs(hostname=hostname)
        if count:
            log.warning("marked %d run(s) of an earlier worker on %s as lost", count, hostname)
    finally:
        close_old_connections()


@shared_task(name="checklist.mark_lost_runs")
def mark_lost_runs_task():
    return runner.mark_lost_runs()


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
