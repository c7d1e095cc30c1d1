"""The migrate job's chunks as Celery tasks, for teams that run several workers (see
docs/scaling.md): the job's coordinator sends each chunk here; any worker on the chunk queue
loads it and the coordinator learns the outcome from the target's control table
(migration.remote). A chunk is loaded exactly once however often it arrives.

The message holds the run id and the chunk (file path, table, columns, key range), never the
target URL: the worker reads it from the run's runbook, as the job itself does.
"""
import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings

from migration.remote import Remote, load_remote_chunk

from .models import TaskRun
from .runbook_target import target_url

log = logging.getLogger(__name__)


@shared_task(name="checklist.load_chunk", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def load_chunk(run_id, payload):
    """Load one chunk of a running migrate job; nothing once the run ended or was cancelled
    (its coordinator stops waiting, and a later run resumes from the control table)."""
    run = TaskRun.objects.select_related("runbook__target").filter(pk=run_id).first()
    if run is None or run.state != TaskRun.RUNNING or run.cancel_requested:
        return
    # The message names a file: only one of the run's own sources is read.
    path = Path(str(payload.get("args", {}).get("job", {}).get("path", ""))).resolve()
    if path not in {Path(s.path).resolve() for s in run.runbook.sources.all()}:
        log.warning("run #%s: a chunk names %s, not a source of the runbook; ignored", run_id, path)
        return
    load_remote_chunk(target_url(run.runbook), payload)


def remote_for(run):
    """How the migrate job of `run` sends its chunks: to MIGRATION_CHUNK_QUEUE when set (workers
    started with `-Q` that queue), else None (the job's own processes load them)."""
    queue = settings.MIGRATION_CHUNK_QUEUE
    if not queue:
        return None

    def dispatch(task_id, payload):
        load_chunk.apply_async((run.pk, payload), queue=queue)

    return Remote(dispatch, slots=settings.MIGRATION_CHUNK_SLOTS,
                  redeliver_after=settings.MIGRATION_CHUNK_REDELIVER_SECONDS)
