"""Jobs behind items: the registry of job kinds, and starting and cancelling runs.

A job kind names the function that does the work (a handler taking a JobContext), the parameters
it needs, and the items it can earn. Which items of a template a kind earns is data (JobBinding
rows, made on import from `bindings/*.json` or edited in the admin). Every start goes through
`start_job()`, whether from the Run button, the API or `manage.py run_job`: it checks the rules,
records a queued TaskRun and its audit event, and queues the Celery task; a worker does the rest.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import audit, params as job_params, rules
from .actions import Refused, _check, _lock_runbook, _run
from .models import CommandSpec, Item, JobBinding, RunbookBinding, TaskRun

BINDINGS_DIR = Path(__file__).resolve().parent / "bindings"

@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    handler: str  # dotted path of `handler(ctx) -> JobResult`
    params: tuple = ()  # the Params (checklist/params.py) a run may pass; nothing else is taken
    time_limit: int = 3600  # seconds; the worker kills the task after this
    needs_target: bool = False
    needs_sources: bool = True
    description: str = ""
    # Dotted path of `hook(run, user)` called in the run's final transaction after a success.
    on_success: str = ""
    # Applies unified_schema.sql: refused unless a lead's approval stands for that very file.
    needs_schema_approval: bool = False
    # Named parts a lead can bind an item to, for kinds that judge items one by one
    # ((key, label), ...: the success criteria, the rollback triggers). The handler's
    # item_outcomes are keyed by these keys for items bound to a part.
    parts: tuple = ()


REGISTRY = {
    k.name: k
    for k in [
        JobKind("backup", "Back up and verify the SQLite files", "migration.tasks.backup_job",
                description="Online backup, integrity check, manifest with sha256, restore test."),
        JobKind("restore-test", "Restore test", "migration.tasks.restore_test_job",
                description="Restore the latest backup to a scratch folder and compare."),
        JobKind("assess", "Assess the SQLite databases", "migration.tasks.assess_job"),
        JobKind("schema", "Generate the unified PostgreSQL schema", "migration.tasks.schema_job",
                needs_target=True, on_success="checklist.actions.void_stale_schema_approval"),
        JobKind("dry-run", "Dry-run the migration", "migration.tasks.dry_run_job", needs_target=True,
                needs_schema_approval=True),
        JobKind("migrate", "Run the migration (COPY)", "migration.tasks.migrate_job",
                needs_target=True, time_limit=4 * 3600, needs_schema_approval=True),
        JobKind("validate", "Validate every row", "migration.tasks.validate_job", needs_target=True,
                time_limit=4 * 3600),
        JobKind("rollback", "Roll back the migration", "migration.tasks.rollback_job",
                needs_target=True, description="Restore the SQLite files and drop exactly what the "
                                               "migration created (refused if anything else depends on it)."),
        JobKind("rollback-rehearsal", "Rehearse the rollback", "migration.tasks.rollback_rehearsal_job",
                needs_target=True, description="Verify the backups and run the drops in a transaction "
                                               "that is rolled back: proves the rollback, changes nothing."),
        JobKind("cleanup", "Archive and clean up", "migration.tasks.cleanup_job"),
    ]
}


def kinds():
    return REGISTRY


def register(kind):
    """Add a job kind (other apps register theirs from their AppConfig.ready())."""
    REGISTRY[kind.name] = kind
    return kind


COMMAND_PREFIX = "command:"


def get_kind(name):
    """A registered kind, or `command:<name>` for each command an admin configured."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(COMMAND_PREFIX):
        spec = CommandSpec.named(name.removeprefix(COMMAND_PREFIX))
        if spec is not None:
            return JobKind(name, f"Run {spec.name}", "checklist.commands.command_job",
                           time_limit=spec.timeout_seconds + 60, needs_sources=False,
                           description=spec.description)
    raise Refused(rules.Decision(False, f"Unknown job kind '{name[:80]}'.", 400))


def bind_known_template(template):
    """Apply every bindings file whose `template_title_contains` matches the template's title."""
    made = 0
    for path in sorted(BINDINGS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("template_title_contains", "\0") in template.title:
            made += bind_template(template, data)
    return made


def bind_template(template, data):
    """Bind job kinds to a template's items from bindings data: {"bindings": {kind: [entry]}},
    an entry being the item's exact text, or {"group": ..., "text": ...} where the same text
    stands in several groups."""
    items = list(Item.objects.filter(group__phase__template=template).select_related("group"))
    made = []
    for kind, entries in data["bindings"].items():
        for entry in entries:
            if isinstance(entry, str):
                entry = {"text": entry}
            made += [JobBinding(item=i, kind=kind, part=entry.get("part", "")) for i in items
                     if i.text == entry["text"] and entry.get("group", i.group.title) == i.group.title]
    JobBinding.objects.bulk_create(made, ignore_conflicts=True)
    return len(made)


def items_for(runbook, kind):
    """The items `kind` earns in this runbook: its own bindings, copied when it started."""
    return list(Item.objects.filter(runbook_bindings__runbook=runbook,
                                    runbook_bindings__kind=kind)
                .select_related("group").order_by("group__phase__order", "group__order", "order"))


def template_bindings(template):
    """item_id -> [(binding value, words), ...] of a template version for its page: the value is
    "kind" or "kind/part", the words name the part ("success-criteria: Application uptime")."""
    out = {}
    for item_id, kind, part in JobBinding.objects.filter(
            item__group__phase__template=template).order_by("pk").values_list("item_id", "kind",
                                                                              "part"):
        value, words = (f"{kind}/{part}", f"{kind}: {part_label(kind, part)}") if part else (kind, kind)
        out.setdefault(item_id, []).append((value, words))
    return out


def binding_choices():
    """[(value, words), ...] a lead can bind an item to: every kind, and each part of the kinds
    that judge items one by one instead of the kind as a whole."""
    out = []
    for name in sorted(REGISTRY):
        kind = REGISTRY[name]
        out += [(f"{name}/{key}", f"{name}: {label}") for key, label in kind.parts] or [(name, name)]
    return out


def runbook_bindings(runbook):
    """item_id -> [kind, ...] of a runbook: the bindings it started with, in one query."""
    out = {}
    for item_id, kind in RunbookBinding.objects.filter(runbook=runbook).order_by(
            "pk").values_list("item_id", "kind"):
        out.setdefault(item_id, []).append(kind)
    return out


def part_label(kind_name, part):
    """A bound part's words ('Application uptime > 99.9%'), or the key if the kind lost it."""
    kind = REGISTRY.get(kind_name)
    return dict(kind.parts).get(part, part) if kind is not None else part


def latest_runs(runbook):
    """kind -> the newest TaskRun of that kind on this runbook (one query)."""
    out = {}
    for run in runbook.runs.select_related("started_by").order_by("-created_at", "-pk"):
        out.setdefault(run.kind, run)
    return out


def schema_file(runbook):
    """The unified_schema.sql the engine's run step applies for this runbook (its work folder)."""
    from django.conf import settings

    return Path(settings.JOB_WORKDIR) / f"runbook-{runbook.pk}" / "engine" / "unified_schema.sql"


def schema_file_sha256(runbook):
    """The sha256 of the schema file the run would apply now, or None when there is none."""
    from .evidence import file_sha256

    path = schema_file(runbook)
    return file_sha256(path) if path.is_file() else None


def start_job(user, runbook, kind_name, params=None):
    """Queue a job on a runbook, through the same rules as a tick. Returns the TaskRun.

    `params` are checked against the kind's declared parameters (checklist/params.py): anything
    else is refused (400, or 403 for a lead-only parameter) with a 'denied' audit event."""
    if not isinstance(kind_name, str):
        raise Refused(rules.Decision(False, "'kind' must be the name of a job kind.", 400))
    return _start(user, runbook, get_kind(kind_name), params)


@_run
def _start(user, runbook, kind, params):
    runbook = _lock_runbook(runbook.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    items = items_for(runbook, kind.name)
    where = {"obj": runbook, "runbook": runbook}
    # Who first, then what was passed (a bad request is 400 whatever the runbook's state), then
    # whether the runbook is ready for this job.
    _check(rules.can_work(user), user, f"job:{kind.name}", **where)
    params, decision = job_params.validate(user, kind, params)
    _check(decision, user, f"job:{kind.name}", **where)
    _check(rules.can_run_job(user, runbook, kind, items, facts), user, f"job:{kind.name}", **where)
    if kind.needs_schema_approval:
        _check(rules.can_apply_schema(runbook, schema_file_sha256(runbook)), user,
               f"job:{kind.name}", **where)
    try:
        with transaction.atomic():  # the database allows one active run per kind and runbook
            run = TaskRun.objects.create(runbook=runbook, kind=kind.name, started_by=user,
                                         params=job_params.for_storage(kind, params))
    except IntegrityError:
        _check(rules.Decision(False, f"A {kind.title.lower()} run is already queued or running "
                                     "on this runbook.", 409), user, f"job:{kind.name}", **where)
    run.items.set(items)
    audit.record("job-start", actor=user, obj=run, runbook=runbook,
                 after={"kind": kind.name, "params": job_params.shown(run.params),
                        "items": [i.pk for i in items]})
    # Queue only once the run is committed, so the worker always finds it.
    transaction.on_commit(lambda: _enqueue(run, kind))
    return run


def _enqueue(run, kind):
    from .tasks import run_job

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


@_run
def cancel_run(user, run):
    """Ask a queued or running job to stop; a queued one is cancelled at once."""
    _lock_runbook(run.runbook_id)
    run = TaskRun.objects.select_for_update().select_related("runbook").get(pk=run.pk)
    _check(rules.can_cancel_run(user, run), user, "job-cancel", obj=run, runbook=run.runbook)
    if run.state == TaskRun.QUEUED:
        run.state, run.finished_at = TaskRun.CANCELLED, timezone.now()
        run.error = f"Cancelled by {user.get_username()} before it started."
    run.cancel_requested = True
    run.save()
    audit.record("job-cancel", actor=user, obj=run, runbook=run.runbook,
                 after={"kind": run.kind, "state": run.state})
    return run
