"""A runbook's revisions and what each one changed.

Every write on a runbook bumps its revision (`bump`, under the runbook's row lock) and records
what it changed (`record`) in the same transaction. On PostgreSQL the bump also sends
NOTIFY `mingus_runbook` with "runbook_id:revision", delivered when the transaction commits, so
every web process LISTENing (checklist.live) hears of every change; on SQLite the live watcher
reads the revision instead. `since` answers a page at an older revision with what changed since,
or None when it cannot say (too far behind, or a revision without a record): the page then gets
its whole body.
"""
from django.db import connection, transaction

from .models import ItemState, Runbook, RunbookChange

CHANNEL = "mingus_runbook"
# Records kept per runbook: a page further behind than this gets its whole body again.
KEEP = 200


def bump(runbook_id):
    """Take the runbook's row lock and move it to its next revision; returns that revision
    (None when there is no such runbook). The caller's transaction carries the NOTIFY."""
    table = Runbook._meta.db_table
    update = f"UPDATE {table} SET revision = revision + 1 WHERE id = %s RETURNING id, revision"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One statement: writes are counted in queries, and this runs on every one.
            cursor.execute(f"WITH bumped AS ({update}) SELECT revision, pg_notify(%s, "
                           "id::text || ':' || revision::text) FROM bumped",
                           [runbook_id, CHANNEL])
        else:
            cursor.execute(update, [runbook_id])
        row = cursor.fetchone()
    return row[0] if row else None


def record(runbook, kind, states=(), phases=(), run=None):
    """Note what the runbook's current revision changed: item states (instances or ids), phases
    whose state changed, a run. Call it inside the write's transaction, after `bump`, with the
    runbook as read after the bump (a stale one records under an older revision, and the newer
    one, unrecorded, makes pages reload their body: never a missed change)."""
    revision = runbook.revision
    RunbookChange.objects.create(
        runbook_id=runbook.pk, revision=revision, kind=kind,
        state_ids=sorted({getattr(s, "pk", s) for s in states}),
        phase_ids=sorted({getattr(p, "pk", p) for p in phases}),
        run_id=getattr(run, "pk", run))
    if revision % KEEP == 0:  # now and then, not on every write
        RunbookChange.objects.filter(runbook_id=runbook.pk, revision__lte=revision - KEEP).delete()
    return revision


def run_changed(run):
    """A job run moved (progress, log, end): a revision of its own, recording the rows that show
    the run (the items it earns), in one transaction so the NOTIFY never precedes the record."""
    with transaction.atomic():
        revision = bump(run.runbook_id)
        if revision is None:
            return None
        states = ItemState.objects.filter(runbook_id=run.runbook_id, item__runs=run.pk)
        return record(Runbook(pk=run.runbook_id, revision=revision), RunbookChange.RUN,
                      states=states.values_list("pk", flat=True), run=run)


class Since:
    """What changed after one revision up to `revision`: the union of the records."""

    def __init__(self, revision, records):
        self.revision = revision
        self.kinds = {r.kind for r in records}
        self.state_ids = sorted({i for r in records for i in r.state_ids})
        self.phase_ids = sorted({i for r in records for i in r.phase_ids})
        self.run_ids = sorted({r.run_id for r in records if r.run_id is not None})


def since(runbook_id, revision, current=None):
    """The changes of the runbook after `revision` (a Since), or None when the records cannot
    tell (older than KEEP revisions, or a revision without a record)."""
    if current is None:
        current = Runbook.objects.filter(pk=runbook_id).values_list("revision", flat=True).first()
        if current is None:
            return None
    if revision >= current:
        return Since(current, [])
    if current - revision > KEEP:
        return None
    records = list(RunbookChange.objects.filter(
        runbook_id=runbook_id, revision__gt=revision, revision__lte=current))
    if len({r.revision for r in records}) != current - revision:
        return None
    return Since(current, records)
