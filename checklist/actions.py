"""Every state change of the checklist, one function each.

Each action locks what it changes (the runbook row first, so actions on one runbook are
serialised; then the item), asks the rule again under that lock, writes the change and its
AuditEvent in one transaction, bumps the runbook's revision for pollers, and returns what changed.
A refusal raises `Refused` after recording a 'denied' audit event in its own transaction, so the
refusal is on the record even though nothing else was written.
"""
import hashlib
import re

from django.db import transaction
from django.utils import timezone

from migration.redact import redact_url

from . import announcements, audit, changes, digests, item_keys, jobs, rules
from .importer import ChecklistParseError, decode_source, parse_checklist
from .replay import item_snapshot
from .rules import Refused  # noqa: F401  (callers catch actions.Refused)
from .runbook_target import encrypt_url
from .models import (
    ChecklistTemplate,
    ContactField,
    ContactValue,
    GoLiveApproval,
    GoLiveRequest,
    Group,
    Item,
    ItemNote,
    ItemState,
    JobBinding,
    Phase,
    Runbook,
    RunbookBinding,
    RunbookSource,
    RunbookTarget,
    RunbookChange,
    SchemaApproval,
    SignOff,
)


def _refuse(decision, user, action, obj=None, runbook=None, phase=None, item=None):
    audit.record(
        "denied",
        actor=user,
        obj=obj,
        runbook=runbook,
        phase=phase,
        item=item,
        after={"attempted": action, "reason": decision.reason, "status": decision.status},
    )
    raise Refused(decision)


def deny(user, action, decision, **where):
    """Record a refusal decided outside an action (a view's read check) and raise it."""
    _refuse(decision, user, action, **where)


def require(decision, user, action, **where):
    """Inside an `atomic_action`: go on when `decision` allows, else refuse `action` (the refusal
    is audited once the action's transaction has been rolled back) and raise Refused."""
    if not decision:
        # Leave the action's transaction first: the refusal is recorded on its own.
        raise _Deferred(decision, user, action, where)


class _Deferred(Exception):
    def __init__(self, decision, user, action, where):
        self.args_ = (decision, user, action, where)


def atomic_action(fn):
    """Run an action body in a transaction; record and raise refusals outside it."""

    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return fn(*args, **kwargs)
        except _Deferred as deferred:
            decision, user, action, where = deferred.args_
            _refuse(decision, user, action, **where)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def lock_runbook(runbook_id):
    """Lock a runbook's row for the rest of the transaction and return it, fresh."""
    # The UPDATE both takes the row lock that serialises writes on this runbook and bumps the
    # revision other people's pages listen (or poll) for; each action then records what the
    # revision changed (changes.record), so live pages are sent only that.
    changes.bump(runbook_id)
    return Runbook.objects.get(pk=runbook_id)


def _lock_state(state_id):
    runbook_id = ItemState.objects.values_list("runbook_id", flat=True).get(pk=state_id)
    runbook = lock_runbook(runbook_id)
    state = (
        ItemState.objects.select_for_update(of=("self",))
        .select_related("item__group__phase", "checked_by")
        .get(pk=state_id)
    )
    return runbook, state


# An item's after-state as its events record it; `verify_audit` replays these (checklist.replay).
_item_snapshot = item_snapshot


def _where(state):
    return {"obj": state, "runbook": state.runbook, "phase": state.item.group.phase, "item": state.item}


def _check_version(state, expected_version, user, action):
    if expected_version is not None:
        try:
            expected_version = int(str(expected_version).strip())
            if not 0 <= expected_version < 2**31:
                raise ValueError
        except ValueError:
            require(rules.Decision(False, "'version' must be the item's version number, as the "
                                         "page sent it.", 400), user, action, **_where(state))
    if expected_version is not None and expected_version != state.version:
        who = state.checked_by.get_username() if state.checked_by else "someone"
        require(
            rules.Decision(False, f"This item was changed by {who} since you loaded it; "
                                  "your change was not applied. The page now shows the latest.", 409),
            user, action, **_where(state),
        )


# A note is read on the page and copied into its audit event: a page of text is plenty, and a
# bound keeps a pasted log (or a hostile megabyte) out of the page and the signed history.
NOTE_MAX_CHARS = 4000


def _add_note(state, user, action, text):
    text = (text or "").strip()
    if len(text) > NOTE_MAX_CHARS and user is not None:
        require(rules.Decision(False, f"A note holds at most {NOTE_MAX_CHARS} characters (this one "
                                      f"has {len(text)}); attach long output as evidence instead.",
                               400), user, action, **_where(state))
    if text:
        ItemNote.objects.create(state=state, author=user, action=action, text=text)
    return text


@atomic_action
def tick(user, state, note="", expected_version=None, run=None, approval=None,
         judged_passed=False):
    """Tick an item: by hand, or earned by a succeeded job `run` (the user started the job) or by
    a schema `approval`. rules.can_tick refuses a hand tick of an item a job earns."""
    runbook, state = _lock_state(state.pk)
    _check_version(state, expected_version, user, "tick")
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_tick(user, state, facts, run=run, approval=approval,
                          judged_passed=judged_passed), user, "tick", **_where(state))
    before = _item_snapshot(state)
    state.checked, state.checked_by, state.checked_at = True, user, timezone.now()
    state.earned_by, state.earned_run = "", None
    if run is not None:
        state.earned_by, state.earned_run = f"{run.kind} run #{run.pk}", run
    elif approval is not None:
        state.earned_by = f"schema approval #{approval.pk}"
    state.overridden, state.override_reason = False, ""
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, user, "tick", note)
    audit.record("tick", actor=user, before=before, after={**_item_snapshot(state), "note": note},
                 **_where(state))
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    return state


@atomic_action
def override(user, state, reason, expected_version=None):
    """A lead ticks a job-bound item without its job, saying why; audited as an override and
    shown as one everywhere (never as earned)."""
    runbook, state = _lock_state(state.pk)
    _check_version(state, expected_version, user, "override")
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_override(user, state, facts), user, "override", **_where(state))
    reason = (reason or "").strip()
    if not reason:
        require(rules.Decision(False, "reason: say why this item is ticked without its job.", 400),
               user, "override", **_where(state))
    before = _item_snapshot(state)
    state.checked, state.checked_by, state.checked_at = True, user, timezone.now()
    state.earned_by, state.earned_run = "", None
    state.overridden, state.override_reason = True, reason
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, user, "override", reason)
    audit.record("override", actor=user, before=before,
                 after={**_item_snapshot(state), "note": note}, **_where(state))
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    return state


@transaction.atomic
def withdraw_earned(state, reason, run=None):
    """Withdraw an earned tick whose evidence no longer holds (the system acts, not a person),
    and the sign-offs resting on it, exactly as an untick does. Returns the state, or None when
    there was no earned tick to withdraw (someone unticked it meanwhile)."""
    runbook, state = _lock_state(state.pk)
    if not rules.can_withdraw_earned(state):
        return None
    facts = rules.RunbookFacts.load(runbook, states=False)
    before = _item_snapshot(state)
    state.checked, state.checked_by, state.checked_at = False, None, None
    state.earned_by, state.earned_run = "", None
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, None, "withdrawn", reason)
    audit.record("tick-withdrawn", actor=None, before=before,
                 after={**_item_snapshot(state), "reason": reason, "note": note,
                        "run": run.pk if run is not None else None}, **_where(state))
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    _withdraw_from(runbook, state.item.group.phase, None, f"Earned tick withdrawn: {reason}",
                   facts)
    return state


def withdraw_earned_by_failure(run, items):
    """A failed run of a bound job withdraws the earned ticks of `items` (the items it would
    have earned): the evidence no longer says they hold."""
    withdrawn = []
    states = ItemState.objects.filter(runbook_id=run.runbook_id, item__in=items, checked=True
                                      ).exclude(earned_by="")
    reason = f"{run.kind} run #{run.pk} failed: {(run.error or 'no reason given')[:300]}"
    for st in states:
        if withdraw_earned(st, reason, run=run) is not None:
            withdrawn.append(st)
    return withdrawn


def verify_earned_evidence(runbook):
    """Recompute the sha256 of every evidence file behind the runbook's earned ticks; withdraw
    each tick whose evidence is missing or changed. Called in the job path and by beat (a GET
    never does this: reads never write). Returns the withdrawn states."""
    from .models import Evidence
    from .evidence import evidence_problem

    withdrawn = []
    states = (ItemState.objects.filter(runbook=runbook, checked=True, earned_run__isnull=False)
              .select_related("earned_run"))
    by_run = {}
    for st in states:
        by_run.setdefault(st.earned_run_id, []).append(st)
    for run_id, run_states in by_run.items():
        problems = [p for p in (evidence_problem(e) for e in
                                Evidence.objects.filter(run_id=run_id).exclude(path=""))
                    if p]
        if not problems:
            continue
        run = run_states[0].earned_run
        reason = f"evidence of {run.kind} run #{run.pk} no longer holds: {problems[0]}"
        for st in run_states:
            if withdraw_earned(st, reason, run=run) is not None:
                withdrawn.append(st)
    return withdrawn


@atomic_action
def untick(user, state, note="", expected_version=None, confirm=False, reason=""):
    """Untick an item; in a signed-off phase this withdraws that sign-off and every later one
    (and an open go-live request), which needs `confirm` and a `reason` (refused otherwise,
    naming what it would withdraw)."""
    runbook, state = _lock_state(state.pk)
    _check_version(state, expected_version, user, "untick")
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_untick(user, state, facts), user, "untick", **_where(state))
    withdraws = _confirmed_withdrawal(user, state, facts, confirm, reason, "untick")
    before = _item_snapshot(state)
    state.checked, state.checked_by, state.checked_at, state.earned_by = False, None, None, ""
    state.earned_run, state.overridden, state.override_reason = None, False, ""
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, user, "untick", note)
    event = audit.record("untick", actor=user, before=before,
                         after={**_item_snapshot(state), "note": note, **withdraws},
                         **_where(state))
    if withdraws:
        announcements.announce(event)
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    _withdraw_from(runbook, state.item.group.phase, user,
                   _withdrawal_reason(user, "unticked", state, reason), facts)
    return state


def _confirmed_withdrawal(user, state, facts, confirm, reason, action):
    """Refuse a change that would withdraw sign-offs unless confirmed with a reason; what the
    audit event of a confirmed one adds (the reason, what it withdrew)."""
    phase = facts.status(state.item.group.phase_id).phase
    require(rules.can_withdraw(facts, phase, confirm, reason), user, action, **_where(state))
    words = rules.withdrawal_words(facts, phase)
    return {"reason": reason.strip(), "withdrew": words} if words else {}


def _withdrawal_reason(user, verb, state, reason):
    said = f": {reason.strip()}" if (reason or "").strip() else ""
    return f"{user.get_username()} {verb} “{state.item.text}”{said}"[:500]


@atomic_action
def add_note(user, state, text):
    """Add a note to an item (audited `note`); the item's state does not change."""
    runbook, state = _lock_state(state.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_change_item(user, state, facts), user, "note", **_where(state))
    if not (text or "").strip():
        require(rules.Decision(False, "A note cannot be empty.", 400), user, "note", **_where(state))
    note = _add_note(state, user, "note", text)
    audit.record("note", actor=user, after={"note": note}, **_where(state))
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    return state


@atomic_action
def mark_not_applicable(user, state, reason):
    """Mark an item not applicable, saying why; in a signed-off phase this withdraws that
    sign-off and every later one."""
    runbook, state = _lock_state(state.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_mark_not_applicable(user, state, facts), user, "not-applicable", **_where(state))
    reason = (reason or "").strip()
    if not reason:
        require(rules.Decision(False, "Say why the item does not apply.", 400), user,
               "not-applicable", **_where(state))
    before = _item_snapshot(state)
    state.not_applicable, state.na_reason = True, reason
    state.checked_by, state.checked_at = user, timezone.now()
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, user, "not-applicable", reason)
    audit.record("not-applicable", actor=user, before=before,
                 after={**_item_snapshot(state), "note": note}, **_where(state))
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    return state


@atomic_action
def clear_not_applicable(user, state, note="", confirm=False, reason=""):
    """Make an item applicable again; like an untick, in a signed-off phase it withdraws
    sign-offs, so it needs `confirm` and a `reason` there."""
    runbook, state = _lock_state(state.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_clear_not_applicable(user, state, facts), user, "applicable", **_where(state))
    withdraws = _confirmed_withdrawal(user, state, facts, confirm, reason, "applicable")
    before = _item_snapshot(state)
    state.not_applicable, state.na_reason = False, ""
    state.checked_by, state.checked_at = None, None
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    note = _add_note(state, user, "applicable", note)
    event = audit.record("applicable", actor=user, before=before,
                         after={**_item_snapshot(state), "note": note, **withdraws},
                         **_where(state))
    if withdraws:
        announcements.announce(event)
    changes.record(runbook, RunbookChange.ITEMS, states=[state])
    _withdraw_from(runbook, state.item.group.phase, user,
                   _withdrawal_reason(user, "made applicable again", state, reason), facts)
    return state


def _withdraw_from(runbook, phase, user, reason, facts):
    """Withdraw the standing sign-off of `phase` (if any) and of every later gated phase, and
    void an open go-live request, each with its own audit event."""
    sign_offs, _ = rules.withdrawn_by_change(facts, phase)
    by_pk = {p.pk: p for p in facts.phases}
    withdrawn = []
    now = timezone.now()
    for sign_off in sign_offs:
        p = by_pk[sign_off.phase_id]
        sign_off.withdrawn_at, sign_off.withdrawn_by, sign_off.withdrawn_reason = now, user, reason
        sign_off.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawn_reason"])
        audit.record("sign-off-withdrawn", actor=user, obj=sign_off, runbook=runbook, phase=p,
                     before={"signed_off_by": sign_off.lead.get_username()},
                     after={"withdrawn": True, "reason": reason})
        withdrawn.append(sign_off)
    if withdrawn and facts.go_live is not None:
        request = facts.go_live
        request.state, request.withdrawn_at = GoLiveRequest.WITHDRAWN, now
        request.withdrawn_reason = f"A sign-off was withdrawn ({reason})"
        request.save(update_fields=["state", "withdrawn_at", "withdrawn_reason"])
        audit.record("go-live-withdrawn", actor=user, obj=request, runbook=runbook,
                     after={"state": request.state, "reason": request.withdrawn_reason})
    if withdrawn:
        # Every later gated phase locks again: all their rows change.
        changes.record(runbook, RunbookChange.PHASES,
                       phases=[p for p in facts.gated if p.order >= phase.order])
    return withdrawn


@atomic_action
def sign_off(user, runbook, phase, comment=""):
    """A lead signs off a complete phase, which opens the next one."""
    runbook = lock_runbook(runbook.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_sign_off(user, phase, facts), user, "sign-off", obj=phase, runbook=runbook,
           phase=phase)
    record = SignOff.objects.create(runbook=runbook, phase=phase, lead=user, comment=comment.strip())
    announcements.announce(audit.record(
        "sign-off", actor=user, obj=record, runbook=runbook, phase=phase,
        after={"phase": phase.title, "comment": record.comment, "withdrawn": False}))
    # The phase is signed off and the next gated one opens: the rows of both change.
    opened = [p for p in facts.gated if p.order > phase.order][:1]
    changes.record(runbook, RunbookChange.PHASES, phases=[phase, *opened])
    digests.after_commit("sign-off")
    return record


@atomic_action
def request_go_live(user, runbook, comment=""):
    """A lead requests go-live once every gated phase is signed off; approvals follow."""
    runbook = lock_runbook(runbook.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_request_go_live(user, facts), user, "go-live-request", obj=runbook,
           runbook=runbook)
    request = GoLiveRequest.objects.create(runbook=runbook, requested_by=user, comment=comment.strip())
    audit.record("go-live-request", actor=user, obj=request, runbook=runbook,
                 after={"comment": request.comment, "state": request.state})
    changes.record(runbook, RunbookChange.GO_LIVE)
    digests.after_commit("go-live-request")
    return request


@atomic_action
def approve_go_live(user, runbook, comment=""):
    """A lead other than the requester approves; authorization is computed from the approvals."""
    runbook = lock_runbook(runbook.pk)
    facts = rules.RunbookFacts.load(runbook, states=False)
    require(rules.can_approve_go_live(user, facts), user, "go-live-approve", obj=runbook,
           runbook=runbook)
    approval = GoLiveApproval.objects.create(request=facts.go_live, lead=user, comment=comment.strip())
    facts = rules.RunbookFacts.load(runbook, states=False)
    block = rules.status_block(facts)
    audit.record("go-live-approve", actor=user, obj=approval, runbook=runbook,
                 after={"comment": approval.comment, "approvals": block.approvals,
                        "authorized": block.go_live_authorized})
    if block.go_live_authorized:
        announcements.announce(audit.record(
            "go-live-authorized", actor=user, obj=facts.go_live, runbook=runbook,
            after={"approved_by": sorted(a.lead.get_username() for a in facts.approvals)}))
    changes.record(runbook, RunbookChange.GO_LIVE)
    digests.after_commit("go-live-approve")
    return approval


@atomic_action
def set_contact(user, runbook, field, value):
    """A lead fills in one of the runbook's emergency contact fields (audited `contact`)."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_edit_contacts(user), user, "contact", obj=field, runbook=runbook)
    value = (value or "").strip()
    limit = ContactValue._meta.get_field("value").max_length
    if len(value) > limit:
        require(rules.Decision(False, f"A contact holds at most {limit} characters (this one has "
                                      f"{len(value)}).", 400), user, "contact", obj=field,
                runbook=runbook)
    contact, _ = ContactValue.objects.select_for_update().get_or_create(runbook=runbook, field=field)
    before = {"value": contact.value}
    contact.value, contact.updated_by, contact.updated_at = value, user, timezone.now()
    contact.save()
    audit.record("contact", actor=user, obj=contact, runbook=runbook,
                 before=before, after={"field": field.label, "value": contact.value})
    changes.record(runbook, RunbookChange.CONTACTS)
    return contact


@atomic_action
def start_runbook(user, template, name):
    """Start a runbook on one template version: one ItemState per item, all unticked."""
    # The template's row lock orders this start with a lead's change of its gating.
    template = ChecklistTemplate.objects.select_for_update().get(pk=template.pk)
    require(rules.can_start_runbook(user), user, "start-runbook", obj=template)
    name = (name or "").strip()
    problem = rules.runbook_name_problem(name)
    if problem:
        require(rules.Decision(False, problem, 400), user, "start-runbook", obj=template)
    runbook = Runbook.objects.create(template=template, name=name, created_by=user)
    items = Item.objects.filter(group__phase__template=template).only("pk")
    ItemState.objects.bulk_create([ItemState(runbook=runbook, item=i) for i in items])
    ContactValue.objects.bulk_create(
        [ContactValue(runbook=runbook, field=f) for f in template.contact_fields.all()]
    )
    # The runbook keeps the bindings it starts with: a lead's later change to the template's
    # bindings applies to runbooks started after it, never under the people working this one.
    bindings = RunbookBinding.objects.bulk_create([
        RunbookBinding(runbook=runbook, item_id=b.item_id, kind=b.kind, part=b.part)
        for b in JobBinding.objects.filter(item__group__phase__template=template).order_by("pk")])
    audit.record("runbook-start", actor=user, obj=runbook, runbook=runbook,
                 after={"name": name, "template": str(template), "items": len(items),
                        "bindings": len(bindings)})
    return runbook


TEMPLATE_NAME_MAX = ChecklistTemplate._meta.get_field("name").max_length


def _template_name(name, parsed):
    """The name versions are counted under: the one given, else the checklist's title."""
    given = name is not None and name.strip()
    name = (name.strip() if given else parsed.title) or "Checklist"
    if "\x00" in name or len(name) > TEMPLATE_NAME_MAX:
        what = "the name" if given else "the title (the template's name)"
        why = "contains a NUL byte" if "\x00" in name else (
            f"is {len(name)} characters long, more than the {TEMPLATE_NAME_MAX} allowed")
        raise ChecklistParseError(None if given else 1, f"{what} {why}")
    return name


@atomic_action
def upload_template(user, text, name=None):
    """A lead imports a checklist through the web (the command imports as the operator).
    Returns (template, created); raises importer.ChecklistParseError naming the line."""
    require(rules.can_import_template(user), user, "template-import")
    return import_template(text, name=name, user=user)


@atomic_action
def set_phase_gating(user, phase, kind):
    """A lead makes a phase gated or not gated (or a rollback plan / success criteria) before
    the first runbook starts on its template version."""
    template = ChecklistTemplate.objects.select_for_update().get(pk=phase.template_id)
    phase = Phase.objects.get(pk=phase.pk)
    where = {"obj": phase}
    require(rules.can_change_gating(user, template), user, "phase-gating", **where)
    if kind not in dict(Phase.KIND_CHOICES):
        choices = ", ".join(dict(Phase.KIND_CHOICES))
        require(rules.Decision(False, f"kind: one of {choices}, not '{str(kind)[:40]}'.", 400),
               user, "phase-gating", **where)
    require(rules.keeps_a_gated_phase(template, phase, kind), user, "phase-gating", **where)
    before = {"phase": phase.title, "kind": phase.kind, "gating_reason": phase.gating_reason}
    phase.kind = kind
    phase.gating_reason = f"set by {user.get_username()}, a lead"
    phase.save(update_fields=["kind", "gating_reason"])
    item_keys.settle_openers(template)
    audit.record("phase-gating", actor=user, before=before,
                 after={"phase": phase.title, "template": str(template), "kind": kind,
                        "gating_reason": phase.gating_reason}, **where)
    return phase


@atomic_action
def set_item_key(user, item, key):
    """A lead gives an item of a template version its stable key (a slug, unique within the
    version; '' for none), until the first runbook starts on the version: bindings files, job
    handlers, success criteria and triggers find items by key. Audited as `item-key`."""
    item = Item.objects.select_related("group__phase").get(pk=item.pk)
    template = ChecklistTemplate.objects.select_for_update().get(pk=item.group.phase.template_id)
    require(rules.can_change_item_key(user, template, item, key), user, "item-key", obj=item)
    before = {"key": item.key}
    item.key = key
    item.save(update_fields=["key"])
    audit.record("item-key", actor=user, obj=item, before=before,
                 after={"template": str(template), "item": item.text, "key": key})
    return item


@atomic_action
def bind_item(user, item, kind, bound=True, part=""):
    """A lead binds an item of a template version to a job kind (`bound`), or unbinds it. For a
    kind that judges named parts (a success criterion, a rollback trigger) `part` says which one
    earns the item. The change applies to runbooks started on the version from now on; runbooks
    already started keep the bindings they started with (RunbookBinding)."""

    item = Item.objects.select_related("group__phase").get(pk=item.pk)
    template = ChecklistTemplate.objects.select_for_update().get(pk=item.group.phase.template_id)
    action = "job-binding" if bound else "job-unbinding"
    require(rules.can_change_bindings(user, template), user, action, obj=item)
    if not isinstance(kind, str) or kind not in jobs.REGISTRY:
        require(rules.Decision(False, f"kind: no job kind '{str(kind)[:50]}'.", 400), user, action,
               obj=item)
    part = part if isinstance(part, str) else ""
    if bound:
        require(rules.binding_part_problem(jobs.REGISTRY[kind], part), user, action, obj=item)
    existing = JobBinding.objects.filter(item=item, kind=kind).first()
    before = {"bound": existing is not None,
              **({"part": existing.part} if existing is not None and existing.part else {})}
    if bound and existing is None:
        JobBinding.objects.create(item=item, kind=kind, part=part)
    elif bound and existing.part != part:
        existing.part = part
        existing.save(update_fields=["part"])
    elif not bound:
        part = ""
        JobBinding.objects.filter(item=item, kind=kind).delete()
    keeping = template.runbooks.count()
    audit.record(action, actor=user, obj=item, before=before,
                 after={"template": str(template), "item": item.text, "kind": kind, "bound": bound,
                        **({"part": part} if part else {}),
                        **({"runbooks_keeping_theirs": keeping} if keeping else {})})
    return item


@transaction.atomic
def import_template(text, name=None, user=None):
    """Parse Markdown checklist text and store it as a new template version.

    Returns (template, created). The same text under the same name returns the existing version.
    Raises importer.ChecklistParseError (naming the line) on input it cannot read.
    """
    parsed = parse_checklist(text)  # refuses NUL bytes and text that is not UTF-8, naming the line
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    sha = hashlib.sha256(raw).hexdigest()
    name = _template_name(name, parsed)
    existing = ChecklistTemplate.objects.filter(name=name, sha256=sha).first()
    if existing:
        return existing, False
    last = ChecklistTemplate.objects.select_for_update().filter(name=name).order_by("-version").first()
    template = ChecklistTemplate.objects.create(
        name=name,
        version=(last.version + 1) if last else 1,
        title=parsed.title,
        subtitle=parsed.subtitle,
        metadata=parsed.metadata,
        source_text=decode_source(raw),  # as read (a UTF-16 file's text, not its bytes)
        sha256=sha,
        guidance=[{"title": g.title, "markdown": g.markdown} for g in parsed.guidance],
        computed_sections=list(parsed.computed_sections),
        import_notes=[{"line": line, "message": message} for line, message in parsed.notes],
        imported_by=user if user is not None and user.is_authenticated else None,
    )
    items = []
    for p_order, p in enumerate(parsed.phases):
        phase = Phase.objects.create(template=template, order=p_order, title=p.title, kind=p.kind,
                                     source_line=p.line, gating_reason=p.gating_reason[:300])
        for g_order, g in enumerate(p.groups):
            group = Group.objects.create(phase=phase, order=g_order, section=g.section,
                                         title=g.title, source_line=g.line)
            items += [Item(group=group, template=template, order=i_order, text=i.text,
                           if_applicable=i.if_applicable, source_line=i.line)
                      for i_order, i in enumerate(g.items)]
    Item.objects.bulk_create(items)
    ContactField.objects.bulk_create(
        [ContactField(template=template, order=n, section=c.section, label=c.label,
                      placeholder=c.placeholder) for n, c in enumerate(parsed.contacts)]
    )

    item_keys.settle_openers(template)
    keyed = item_keys.assign_known_keys(template)
    bound = jobs.bind_known_template(template)
    audit.record("template-import", actor=user, obj=template,
                 after={"name": name, "version": template.version, "sha256": sha,
                        "phases": len(parsed.phases), "items": len(items), "job_bindings": bound,
                        "item_keys": keyed})
    return template, True


@atomic_action
def set_sources(user, runbook, sources):
    """Set the runbook's SQLite sources ({name: path}); a lead's configuration change."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_configure(user), user, "sources", obj=runbook, runbook=runbook)
    bad = [n for n in sources if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", n)]
    if bad:
        require(rules.Decision(False, f"Source names may hold letters, digits, '_', '.', '-': "
                                     f"{', '.join(bad)}", 400), user, "sources", obj=runbook,
               runbook=runbook)
    before = {s.name: s.path for s in runbook.sources.all()}
    runbook.sources.all().delete()
    RunbookSource.objects.bulk_create(
        [RunbookSource(runbook=runbook, name=n, path=str(p)) for n, p in sorted(sources.items())])
    audit.record("sources", actor=user, obj=runbook, runbook=runbook, before=before,
                 after={n: str(p) for n, p in sources.items()})
    changes.record(runbook, RunbookChange.SETTINGS)
    return runbook


@atomic_action
def set_target(user, runbook, url):
    """Set the runbook's target PostgreSQL URL; stored encrypted, audited redacted."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_configure(user), user, "target", obj=runbook, runbook=runbook)
    url = (url or "").strip()
    if not re.match(r"^postgres(ql)?://", url):
        require(rules.Decision(False, f"The target must be a postgresql:// URL, not "
                                     f"'{redact_url(url)[:80]}'.", 400),
               user, "target", obj=runbook, runbook=runbook)
    old = RunbookTarget.objects.filter(runbook=runbook).first()
    RunbookTarget.objects.update_or_create(
        runbook=runbook, defaults={"url_encrypted": encrypt_url(url), "url_redacted": redact_url(url),
                                   "updated_at": timezone.now()})
    audit.record("target", actor=user, obj=runbook, runbook=runbook,
                 before={"url": old.url_redacted if old else None}, after={"url": redact_url(url)})
    changes.record(runbook, RunbookChange.SETTINGS)
    return runbook


@atomic_action
def approve_schema(user, runbook, evidence, comment=""):
    """A lead approves unified_schema.sql as it is now (bound to its sha256) and so ticks the
    item bound to the schema approval (rules.SCHEMA_APPROVAL)."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_approve_schema(user), user, "schema-approve", obj=runbook, runbook=runbook)
    latest = rules.latest_schema_evidence(runbook)
    if latest is None or latest.pk != evidence.pk:
        require(rules.Decision(False, "Only the newest unified_schema.sql can be approved.", 409),
               user, "schema-approve", obj=runbook, runbook=runbook)
    approval = SchemaApproval.objects.create(runbook=runbook, evidence=evidence,
                                             sha256=evidence.sha256, lead=user, comment=comment)
    audit.record("schema-approve", actor=user, obj=approval, runbook=runbook,
                 after={"sha256": evidence.sha256, "comment": comment})
    state = schema_approval_state(runbook)
    # The approval panel is in the approval item's row.
    changes.record(runbook, RunbookChange.ITEMS, states=[state] if state is not None else [])
    if state is not None and not state.complete:
        tick(user, state, f"Schema approved (sha256 {evidence.sha256[:12]})", approval=approval)
    return approval


def schema_approval_state(runbook):
    """The runbook's item that only a schema approval ticks (bound to rules.SCHEMA_APPROVAL)."""
    return ItemState.objects.filter(
        runbook=runbook, item__runbook_bindings__runbook=runbook,
        item__runbook_bindings__kind=rules.SCHEMA_APPROVAL).first()


def void_stale_schema_approval(run, user):
    """A new unified_schema.sql voids the approval of the old one: withdraw the approval item's
    tick (and the sign-offs that rested on it)."""
    if rules.schema_approval(run.runbook) is not None:
        return  # the new file has the same sha256 as the approved one
    state = schema_approval_state(run.runbook)
    if state is not None and state.checked and state.earned_by:
        withdraw_earned(state, f"a new unified_schema.sql from {run.kind} run #{run.pk} voids "
                               "the earlier approval; a lead must approve the new file", run=run)


def _admin_snapshot(obj):
    from django.forms.models import model_to_dict

    return {k: (list(v) if isinstance(v, (list, tuple, set)) else v)
            for k, v in model_to_dict(obj).items()
            if not hasattr(v, "all")}  # m2m querysets: not part of an admin edit here


def _admin_where(obj):
    runbook_id = getattr(obj, "runbook_id", None)
    return {"obj": obj, "runbook": lock_runbook(runbook_id) if runbook_id else None}


@atomic_action
def admin_save(user, obj, change):
    """Save an object edited in the Django admin: under its runbook's lock when it has one, if the
    rule allows, with an audit event holding the fields before and after."""
    where = _admin_where(obj) if change else {"obj": obj}
    require(rules.can_admin_write(user, obj), user, "admin-save", **where)
    before = None
    if change:
        before = _admin_snapshot(type(obj).objects.get(pk=obj.pk))
    elif getattr(obj, "runbook_id", None):
        where = _admin_where(obj)
    obj.save()
    where["obj"] = obj
    audit.record("admin-change" if change else "admin-add", actor=user, before=before,
                 after={"model": obj._meta.label, **_admin_snapshot(obj)}, **where)
    return obj


def save_runbook_settings(user, runbook, model, action, values, set_secret, secret="",
                          clear_secret=False):
    """Save one runbook's settings row of `model` (check or proof settings) from already validated
    `values` (fields of model.FIELDS only): under the runbook's lock, a lead's (or admin's) to
    change, audited as `action` with the settings before and after (the secret only redacted:
    `set_secret(row, value)` stores it; an empty `secret` keeps the stored one, `clear_secret`
    removes it). The row is made here on the first save, never by a read. Call it inside an
    atomic action."""
    runbook = lock_runbook(runbook.pk)
    require(rules.can_configure(user), user, action, obj=runbook, runbook=runbook)
    unknown = set(values) - set(model.FIELDS)
    if unknown:
        raise ValueError(f"not {action.replace('-', ' ')}: {', '.join(sorted(unknown))}")
    row = (model.objects.select_for_update().filter(runbook=runbook).first()
           or model(runbook=runbook))
    before = row.snapshot()  # the defaults, before the first save
    for field, value in values.items():
        setattr(row, field, value)
    if clear_secret:
        set_secret(row, "")
    elif secret:
        set_secret(row, secret)
    row.updated_at = timezone.now()
    row.save()
    audit.record(action, actor=user, obj=row, runbook=runbook, before=before, after=row.snapshot())
    return row


@atomic_action
def save_check_settings(user, runbook, values, webhook_url="", clear_webhook=False):
    """A runbook's check settings (deploychecks.models.RunbookCheckSettings), saved as
    save_runbook_settings says; the webhook is their secret."""
    from deploychecks.models import RunbookCheckSettings

    cs = save_runbook_settings(user, runbook, RunbookCheckSettings, "check-settings", values,
                               RunbookCheckSettings.set_webhook_url, webhook_url, clear_webhook)
    changes.record(cs.runbook, RunbookChange.SETTINGS)
    return cs


@atomic_action
def admin_delete(user, obj):
    """Delete an object from the Django admin, audited like `admin_save`."""
    where = _admin_where(obj)
    require(rules.can_admin_write(user, obj), user, "admin-delete", **where)
    before = {"model": obj._meta.label, **_admin_snapshot(obj)}
    audit.record("admin-delete", actor=user, before=before, after=None, **where)
    obj.delete()
