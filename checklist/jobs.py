"""Job kinds: the registry of what a job can be, and which items each kind earns.

A job kind names its handler (a function taking a JobContext and returning a JobResult,
checklist/job_context.py), the parameters a run may pass, and what it needs. Each app registers
the kinds it owns from its AppConfig.ready(): the engine's steps (migration/jobs.py), the checks
and proofs (deploychecks/jobs.py, deploychecks/proof_jobs.py); `command:<name>` kinds come from
the commands an admin configured (checklist/command_job.py). Which items of a template a kind
earns is data (JobBinding rows, made on import from `bindings/*.json` or by a lead).

Starting and cancelling runs are actions (checklist/job_actions.py); running one is
checklist/runner.py.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from django.conf import settings

from migration.hashing import file_sha256

from . import command_job, rules
from .models import CommandSpec, Item, JobBinding, RunbookBinding

BINDINGS_DIR = Path(__file__).resolve().parent / "bindings"


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    handler: Callable  # handler(ctx: JobContext) -> JobResult
    params: tuple = ()  # the Params (checklist/params.py) a run may pass; nothing else is taken
    time_limit: int = 3600  # seconds; the worker kills the task after this
    needs_target: bool = False
    needs_sources: bool = True
    description: str = ""
    # on_success(run, user), called in the run's final transaction after a success.
    on_success: Callable | None = None
    # Applies unified_schema.sql: refused unless a lead's approval stands for that very file.
    needs_schema_approval: bool = False
    # Named parts a lead can bind an item to, for kinds that judge items one by one
    # ((key, label), ...: the success criteria, the rollback triggers). The handler's
    # item_outcomes are keyed by these keys for items bound to a part.
    parts: tuple = ()
    # Who may start it: "member" (anyone who may run jobs) or "lead" (rules.can_run_job), for jobs
    # that change production, such as rolling the deployed app back.
    who: str = "member"


# name -> JobKind, filled by the apps' AppConfig.ready() through register().
REGISTRY = {}
# What the apps do once a run has ended and is committed: step(run), in registration order
# (checklist/runner.py finish() calls them; deploychecks registers its after_run).
RUN_END_STEPS = []


def kinds():
    return REGISTRY


def register(kind):
    """Add a job kind (each app registers its own from its AppConfig.ready())."""
    REGISTRY[kind.name] = kind
    return kind


def on_run_end(step):
    """Have `step(run)` called once every run has ended and its end is committed."""
    if step not in RUN_END_STEPS:
        RUN_END_STEPS.append(step)
    return step


COMMAND_PREFIX = "command:"


def kind_shown(name):
    """The kind as a page shows it, without a query: a registered kind, or a `command:<name>`
    kind titled as get_kind titles it (start_job looks the command up for real)."""
    if name in REGISTRY:
        return REGISTRY[name]
    title = _command_title(name.removeprefix(COMMAND_PREFIX)) if name.startswith(COMMAND_PREFIX) else name
    return JobKind(name, title, None)


def _command_title(command_name):
    return f"Run {command_name}"


def get_kind(name):
    """A registered kind, or `command:<name>` for each command an admin configured."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(COMMAND_PREFIX):
        spec = CommandSpec.named(name.removeprefix(COMMAND_PREFIX))
        if spec is not None:
            return JobKind(name, _command_title(spec.name), command_job.command_job,
                           time_limit=spec.timeout_seconds + 60, needs_sources=False,
                           description=spec.description)
    raise rules.Refused(rules.Decision(False, f"Unknown job kind '{name[:80]}'.", 400))


def bind_known_template(template):
    """Apply every bindings file whose `template_title_contains` matches the template's title."""
    made = 0
    for path in sorted(BINDINGS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "bindings" in data and data.get("template_title_contains", "\0") in template.title:
            made += bind_template(template, data)
    return made


def bind_template(template, data):
    """Bind job kinds to a template's items from bindings data: {"bindings": {kind: [entry]}},
    an entry being an item's key (checklist/item_keys.py), or {"key": ..., "part": ...} for a
    kind that judges named parts. Keys the version does not hold bind nothing."""
    items = {i.key: i for i in Item.objects.filter(group__phase__template=template).exclude(key="")}
    made = []
    for kind, entries in data["bindings"].items():
        for entry in entries:
            entry = {"key": entry} if isinstance(entry, str) else entry
            if entry["key"] in items:
                made.append(JobBinding(item=items[entry["key"]], kind=kind,
                                       part=entry.get("part", "")))
    JobBinding.objects.bulk_create(made, ignore_conflicts=True)
    return len(made)


def items_for(runbook, kind):
    """The items `kind` earns in this runbook: its own bindings, copied when it started."""
    return list(Item.objects.filter(runbook_bindings__runbook=runbook,
                                    runbook_bindings__kind=kind)
                .select_related("group").order_by("group__phase__order", "group__order", "order"))


def items_by_part(runbook, kind):
    """part -> Item of a runbook's bindings to the parts of `kind`: the item each success
    criterion or rollback trigger is meant as, whatever its words."""
    return {b.part: b.item for b in RunbookBinding.objects.filter(
        runbook=runbook, kind=kind).exclude(part="").select_related("item").order_by("pk")}


def template_bindings(template):
    """item_id -> [(binding value, words), ...] of a template version for its page: the value is
    "kind" or "kind/part", the words name the part ("success-criteria: " and the part's label)."""
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
    """A bound part's label (what the criterion or trigger measures), or the key if the kind
    lost it."""
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
    return Path(settings.JOB_WORKDIR) / f"runbook-{runbook.pk}" / "engine" / "unified_schema.sql"


def schema_file_sha256(runbook):
    """The sha256 of the schema file the run would apply now, or None when there is none."""
    path = schema_file(runbook)
    return file_sha256(path) if path.is_file() else None
