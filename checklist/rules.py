"""Every "may this happen now?" of the checklist, as plain functions.

The rules read a `RunbookFacts` snapshot (built in a fixed number of queries, whatever the number
of items) and return a `Decision` with a reason a page can show. They never write. Views, the API,
tasks and management commands all ask the same functions; actions.py asks them again under a row
lock before it writes.
"""
from dataclasses import dataclass, field

from django.conf import settings

from django.db.models import Count, Q

from .models import (GoLiveApproval, GoLiveRequest, Group, ItemState, Phase, RunbookBinding,
                     SignOff)

MEMBER, LEAD, AUDITOR, ADMIN = "member", "lead", "auditor", "admin"
ROLES = (MEMBER, LEAD, AUDITOR, ADMIN)

LOCKED, OPEN, COMPLETE, SIGNED_OFF = "locked", "open", "complete", "signed-off"

FORBIDDEN, CONFLICT = 403, 409


@dataclass(frozen=True)
class Decision:
    """A rule's answer: allowed or not, why not (words a page can show) and the HTTP status a
    refusal maps to. Truthy when allowed."""

    allowed: bool
    reason: str = ""
    status: int = 200  # the HTTP status a refusal maps to: 403 (role) or 409 (state)
    # What the refused write would withdraw (sign-offs, a go-live request), in words, when it
    # was refused for want of a confirmation: the page lists them beside a reason field.
    withdraws: tuple = ()

    def __bool__(self):
        return self.allowed


class Refused(Exception):
    """An action the rules refused; `.decision` carries the reason and HTTP status."""

    def __init__(self, decision):
        super().__init__(decision.reason)
        self.decision = decision

    @property
    def status(self):
        """The HTTP status of the refusal: 400, 403 or 409."""
        return self.decision.status


ALLOW = Decision(True)


def _forbid(reason):
    return Decision(False, reason, FORBIDDEN)


def _conflict(reason):
    return Decision(False, reason, CONFLICT)


def roles(user):
    """The set of role names a user holds (Django groups; a superuser is an admin)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_mingus_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached |= {ADMIN}
        user._mingus_roles = cached
    return cached


def can_read(user):
    """Anyone holding a role may read every runbook and its history."""
    if roles(user):
        return ALLOW
    return _forbid("You need a role (member, lead, auditor or admin) to see runbooks.")


def can_work(user):
    """Tick, untick, note, run jobs: members, leads and admins; auditors change nothing."""
    if roles(user) & {MEMBER, LEAD, ADMIN}:
        return ALLOW
    if AUDITOR in roles(user):
        return _forbid("Auditors can read and export, but cannot change a runbook.")
    return _forbid("Only members, leads and admins can change a runbook.")


def is_lead(user):
    """A member of the lead group. An admin (superuser) who is not one may configure and sign
    off as a lead may, but never approves: approvals are the leads' own word."""
    return LEAD in roles(user)


def _with_by_lead(approvals):
    """Go-live approvals annotated with `by_lead`: was the approver in the lead group (now)?"""
    from django.contrib.auth import get_user_model
    from django.db.models import Exists, OuterRef

    memberships = get_user_model().groups.through.objects.filter(
        user_id=OuterRef("lead_id"), group__name=LEAD, user__is_active=True)
    return approvals.annotate(by_lead=Exists(memberships))


def can_lead(user):
    """Leads and admins may do what a lead does (approvals are narrower: is_lead)."""
    if roles(user) & {LEAD, ADMIN}:
        return ALLOW
    return _forbid("Only a lead can do this.")


def can_view_history(user):
    """The audit history and its exports: auditors, leads and admins."""
    if roles(user) & {AUDITOR, LEAD, ADMIN}:
        return ALLOW
    return _forbid("Only auditors and leads can see the audit history.")


def can_start_runbook(user):
    """Starting a runbook on a checklist version is a lead's decision."""
    return can_lead(user)


def can_import_template(user):
    """Importing a checklist (a new template version) is a lead's decision."""
    return can_lead(user)


def can_change_gating(user, template):
    """A lead changes which phases are gated only before the first runbook starts on this
    version: a running runbook's phases must not lock or open under the people working it."""
    decision = can_lead(user)
    if not decision:
        return decision
    started = template.runbooks.order_by("pk").first()
    if started is not None:
        return _conflict(f"Gating of {template} is fixed: runbook '{started.name}' has started on "
                         "it. Import a new version to change it.")
    return ALLOW


def can_edit_item_keys(user, template):
    """May this user change the item keys of this version now? A lead, until the first runbook
    starts on it (a running runbook's jobs find their items by key)."""
    decision = can_lead(user)
    if not decision:
        return decision
    started = template.runbooks.order_by("pk").first()
    if started is not None:
        return _conflict(f"Item keys of {template} are fixed: runbook '{started.name}' has "
                         "started on it. Import a new version to change them.")
    return ALLOW


def can_change_item_key(user, template, item, key):
    """A lead gives an item its stable key until the first runbook starts on its version (a
    running runbook's jobs find their items by key); the key is a slug unique in the version."""
    from .item_keys import key_problem
    from .models import Item

    decision = can_edit_item_keys(user, template)
    if not decision:
        return decision
    problem = key_problem(key)
    if problem:
        return Decision(False, problem, 400)
    if key and Item.objects.filter(group__phase__template=template, key=key).exclude(
            pk=item.pk).exists():
        return _conflict(f"key: '{key}' is already the key of another item of {template}.")
    return ALLOW


def can_change_bindings(user, template):
    """A lead binds items of a version to jobs at any time: runbooks started afterwards take the
    new bindings, a runbook in progress keeps the ones it started with."""
    return can_lead(user)


def binding_part_problem(kind, part):
    """A kind with named parts (criteria, triggers) needs one of them; other kinds take none."""
    keys = [key for key, _ in kind.parts]
    if keys and part not in keys:
        return Decision(False, f"part: {kind.name} earns an item through one of "
                               f"{', '.join(keys)}; '{str(part)[:50]}' is not one.", 400)
    if not keys and part:
        return Decision(False, f"part: {kind.name} has no parts to bind to.", 400)
    return ALLOW


def keeps_a_gated_phase(template, phase, kind):
    """A template keeps at least one gated phase (a runbook goes live phase by phase)."""
    if kind == Phase.GATED or phase.kind != Phase.GATED:
        return ALLOW
    if template.phases.filter(kind=Phase.GATED).exclude(pk=phase.pk).exists():
        return ALLOW
    return _conflict(f"{phase.title} is the only gated phase; a checklist needs one to be "
                     "signed off and go live.")


def runbook_name_problem(name):
    """Why `name` (already stripped) cannot name a runbook, or "" when it can."""
    from .models import Runbook

    limit = Runbook._meta.get_field("name").max_length
    if not name:
        return "A runbook needs a name."
    if "\x00" in name:
        return "name: a runbook's name cannot contain a NUL byte."
    if len(name) > limit:
        return f"name: at most {limit} characters ({len(name)} given)."
    return ""


@dataclass
class PhaseStatus:
    """One phase of one runbook as the rules see it: its state, why it is locked, its
    progress and its sign-off."""

    phase: Phase
    state: str
    reason: str  # why it is locked, empty otherwise
    done: int
    total: int
    sign_off: SignOff | None

    @property
    def percent(self):
        """Done of total as a whole percent (100 when there is nothing to do)."""
        return round(100 * self.done / self.total) if self.total else 100

    @property
    def is_open(self):
        """Anything but locked: its items can be worked."""
        return self.state != LOCKED


@dataclass
class RunbookFacts:
    """Everything the rules need about one runbook, read in a fixed number of queries.

    `load(runbook)` also reads every ItemState (with its item, and the template's groups and
    phases attached once, not joined per row) for pages and exports; `load(runbook,
    states=False)` reads only the per-phase counts, which is all the rules themselves need and
    what the write actions use while they hold the runbook's lock.
    """

    runbook: object
    phases: list
    states: list | None  # ItemState in checklist order, or None when loaded without states
    sign_offs: dict  # phase_id -> the standing SignOff
    go_live: GoLiveRequest | None
    approvals: list
    counts: dict = field(default_factory=dict)  # phase_id -> (done, total)
    statuses: dict = field(default_factory=dict)  # phase_id -> PhaseStatus
    bound: dict = field(default_factory=dict)  # item_id -> (kind, ...) that earn it
    sources: dict = field(default_factory=dict)  # EARNED/OVERRIDDEN/BY_HAND -> ticked items
    # Rollback-trigger items (bound to TRIGGER_KIND): ticked means the trigger fired, so they
    # are counted apart from the work, as (fired, total).
    triggers: tuple = (0, 0)
    withdrawn: list = field(default_factory=list)  # withdrawn SignOffs, newest first

    @classmethod
    def load(cls, runbook, states=True):
        """Read the facts of `runbook` (with every ItemState unless `states` is False)."""
        phases = list(Phase.objects.filter(template_id=runbook.template_id).order_by("order"))
        sources = dict.fromkeys(TICK_SOURCES, 0)
        bound = bound_kinds(runbook)
        trigger_ids = {item_id for item_id, kinds in bound.items() if TRIGGER_KIND in kinds}
        if states:
            state_list = _load_states(runbook, phases)
            counts = {}
            fired = 0
            for st in state_list:
                done, total = counts.get(st.item.group.phase_id, (0, 0))
                counts[st.item.group.phase_id] = (done + st.complete, total + 1)
                if st.checked:
                    sources[tick_source(st)] += 1
                    fired += st.item_id in trigger_ids
        else:
            state_list = None
            counts = {}
            fired = 0
            for row in (ItemState.objects.filter(runbook=runbook)
                        .values("item__group__phase_id").annotate(**_COUNTS,
                                                                  **_fired(trigger_ids))):
                counts[row["item__group__phase_id"]] = (row["done"], row["total"])
                _add_sources(sources, row)
                fired += row.get("n_fired", 0)
        sign_offs, withdrawn = {}, []
        # Standing and withdrawn in one query: the page tells of the latest withdrawal.
        for s in (SignOff.objects.filter(runbook=runbook).select_related("lead", "withdrawn_by")
                  .order_by("-withdrawn_at", "-pk")):
            if s.withdrawn_at is None:
                sign_offs[s.phase_id] = s
            else:
                withdrawn.append(s)
        go_live = (
            GoLiveRequest.objects.filter(runbook=runbook, state=GoLiveRequest.OPEN)
            .select_related("requested_by")
            .first()
        )
        approvals = list(_with_by_lead(go_live.approvals.select_related("lead"))) if go_live else []
        facts = cls(runbook, phases, state_list, sign_offs, go_live, approvals, counts,
                    bound=bound, sources=sources, triggers=(fired, len(trigger_ids)),
                    withdrawn=withdrawn)
        facts.statuses = _phase_statuses(facts)
        return facts

    @classmethod
    def load_many(cls, runbooks):
        """Facts without states for many runbooks at once (the runbooks list), in a fixed
        number of queries however many runbooks there are."""
        runbooks = list(runbooks)
        ids = [r.pk for r in runbooks]
        phases = {}
        for p in Phase.objects.filter(template_id__in={r.template_id for r in runbooks}).order_by("order"):
            phases.setdefault(p.template_id, []).append(p)
        counts, sources = {}, {}
        for row in (ItemState.objects.filter(runbook_id__in=ids)
                    .values("runbook_id", "item__group__phase_id").annotate(**_COUNTS)):
            counts.setdefault(row["runbook_id"], {})[row["item__group__phase_id"]] = (
                row["done"], row["total"])
            _add_sources(sources.setdefault(row["runbook_id"], dict.fromkeys(TICK_SOURCES, 0)),
                         row)
        sign_offs = {}
        for s in SignOff.objects.filter(runbook_id__in=ids, withdrawn_at__isnull=True):
            sign_offs.setdefault(s.runbook_id, {})[s.phase_id] = s
        requests = {g.runbook_id: g for g in GoLiveRequest.objects.filter(
            runbook_id__in=ids, state=GoLiveRequest.OPEN)}
        approvals = {}
        for a in _with_by_lead(GoLiveApproval.objects.filter(request__in=requests.values())):
            approvals.setdefault(a.request_id, []).append(a)
        out = []
        for r in runbooks:
            go_live = requests.get(r.pk)
            facts = cls(r, phases.get(r.template_id, []), None, sign_offs.get(r.pk, {}), go_live,
                        approvals.get(go_live.pk, []) if go_live else [], counts.get(r.pk, {}),
                        sources=sources.get(r.pk, dict.fromkeys(TICK_SOURCES, 0)))
            facts.statuses = _phase_statuses(facts)
            out.append(facts)
        return out

    @property
    def gated(self):
        """The gated phases, in order: the ones signed off one after the other."""
        return [p for p in self.phases if p.kind == Phase.GATED]

    def status(self, phase):
        """The PhaseStatus of a phase (or a phase id)."""
        return self.statuses[phase.pk if hasattr(phase, "pk") else phase]


EARNED, OVERRIDDEN, BY_HAND = "earned", "overridden", "by hand"
TICK_SOURCES = (EARNED, OVERRIDDEN, BY_HAND)

# The job kind whose items are rollback triggers: ticked when the trigger fired (a problem, not
# progress), so they are counted apart from the work.
TRIGGER_KIND = "rollback-triggers"

# The pseudo job kind bound to the schema-review item (the seed's key
# unified-schema-sql-reviewed-and-approved): no job earns that item, only a lead's approval of
# the schema file (actions.approve_schema).
SCHEMA_APPROVAL = "schema-approval"

_EARNED_Q = Q(checked=True) & ~Q(earned_by="")
_OVERRIDDEN_Q = Q(checked=True, overridden=True)
_COUNTS = {
    "total": Count("pk"),
    "done": Count("pk", filter=Q(checked=True) | Q(not_applicable=True)),
    # Not named after fields: an annotation named "checked" would shadow the field in filters.
    "n_checked": Count("pk", filter=Q(checked=True)),
    "n_earned": Count("pk", filter=_EARNED_Q),
    "n_overridden": Count("pk", filter=_OVERRIDDEN_Q),
}


def _fired(trigger_ids):
    """Rollback-trigger items that fired (ticked), counted in the same query as the rest. The
    trigger items are known already (the bindings are read first): an IN list, not a subquery
    per row, which was a third of this query's time and it runs on every write."""
    if not trigger_ids:
        return {}
    return {"n_fired": Count("pk", filter=Q(checked=True, item_id__in=sorted(trigger_ids)))}


def _add_sources(sources, row):
    sources[EARNED] += row["n_earned"]
    sources[OVERRIDDEN] += row["n_overridden"]
    sources[BY_HAND] += row["n_checked"] - row["n_earned"] - row["n_overridden"]


def tick_source(state):
    """How a ticked item came to be ticked: earned (by a job run or a schema approval),
    overridden (a lead ticked a job-bound item with a reason), or by hand."""
    if state.earned_by:
        return EARNED
    if state.overridden:
        return OVERRIDDEN
    return BY_HAND


def bound_kinds(runbook):
    """item_id -> the job kinds that earn it in this runbook (the bindings it started with,
    RunbookBinding rows), in one query."""
    from .models import RunbookBinding

    out = {}
    for item_id, kind in (RunbookBinding.objects.filter(runbook=runbook)
                          .order_by("pk").values_list("item_id", "kind")):
        out[item_id] = out.get(item_id, ()) + (kind,)
    return out


def _load_states(runbook, phases):
    """Item states in checklist order, sharing one Group and one Phase object per group/phase."""
    by_phase = {p.pk: p for p in phases}
    groups = {}
    for group in Group.objects.filter(phase__template_id=runbook.template_id):
        group.phase = by_phase[group.phase_id]
        groups[group.pk] = group
    states = list(ItemState.objects.filter(runbook=runbook).select_related("item", "checked_by"))
    for st in states:
        st.item.group = groups[st.item.group_id]
    states.sort(key=lambda st: (st.item.group.phase.order, st.item.group.order, st.item.order))
    return states


def _phase_statuses(facts):
    statuses = {}
    previous = None
    for phase in facts.gated:
        reason = ""
        if previous is not None and statuses[previous.pk].state != SIGNED_OFF:
            reason = f"{phase.short_title} opens when {previous.short_title} is complete and signed off."
        statuses[phase.pk] = _status(phase, reason, facts.counts, facts.sign_offs.get(phase.pk))
        previous = phase

    gated = facts.gated
    for phase in facts.phases:
        if phase.kind == Phase.GATED:
            continue
        if phase.kind == Phase.OPEN:  # not gated: open from the start
            statuses[phase.pk] = _status(phase, "", facts.counts, None)
            continue
        # A rollback plan or success criteria open with the gated phase stored on them
        # (Phase.opens_with, set at import: checklist/item_keys.py settle_openers).
        opener = next((p for p in gated if p.pk == phase.opens_with_id), None)
        reason = ""
        if opener is not None and statuses[opener.pk].state == LOCKED:
            reason = f"The {phase.title} opens when the {opener.title} opens."
        statuses[phase.pk] = _status(phase, reason, facts.counts, None)
    return statuses


def _status(phase, lock_reason, counts, sign_off):
    d, t = counts.get(phase.pk, (0, 0))
    if lock_reason:
        state = LOCKED
    elif sign_off is not None:
        state = SIGNED_OFF
    elif d == t:
        state = COMPLETE
    else:
        state = OPEN
    return PhaseStatus(phase, state, lock_reason, d, t, sign_off)


def phase_state(facts, phase):
    """locked / open / complete / signed-off, with the reason a locked phase is locked."""
    return facts.status(phase)


def group_complete(facts, group):
    """Every item of the group is ticked or marked not applicable."""
    return all(st.complete for st in facts.states if st.item.group_id == group.pk)


def can_change_item(user, item_state, facts):
    """May this user tick, untick, annotate or mark this item now?"""
    decision = can_work(user)
    if not decision:
        return decision
    status = facts.status(item_state.item.group.phase_id)
    if status.state == LOCKED:
        return _conflict(status.reason)
    return ALLOW


def _job_names(kinds):
    return " or ".join(f"the {k} job" for k in kinds)


def can_tick(user, item_state, facts, run=None, approval=None, judged_passed=False):
    """May this tick happen now? A job-bound item is ticked only by a succeeded run of a job
    bound to it (`run`), the schema-approval item only by a lead's schema approval
    (`approval`); any other item by hand. A kind that judges its items one by one (success
    criteria, assess) earns an item it `judged_passed` even when another of its items failed
    the run."""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    if item_state.checked:
        who = item_state.checked_by.get_username() if item_state.checked_by else "a job"
        return _conflict(f"Already ticked by {who}.")
    if item_state.not_applicable:
        return _conflict("This item is marked not applicable; clear that first.")
    kinds = facts.bound.get(item_state.item_id, ())
    if approval is not None:
        if SCHEMA_APPROVAL not in kinds:
            return _conflict("A schema approval ticks only the schema-approval item.")
        return ALLOW
    if SCHEMA_APPROVAL in kinds:
        return _conflict("Only a lead's approval of unified_schema.sql ticks this item: "
                         "approve the schema on this item's panel.")
    if run is not None:
        if run.kind not in kinds:
            return _conflict(f"A {run.kind} run does not earn this item.")
        if run.state != "succeeded" and not (run.state == "failed" and judged_passed):
            return _conflict(f"{run.kind} run #{run.pk} did not succeed ({run.state}).")
        return ALLOW
    if kinds:
        return _conflict(f"This item is earned by a job: run {_job_names(kinds)}. "
                         "A lead may override with a reason.")
    return ALLOW


def can_override(user, item_state, facts):
    """A lead may tick a job-bound item without its job, saying why (an override). The
    schema-approval item is never overridden: only an approval of the file ticks it."""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    decision = can_lead(user)
    if not decision:
        return _forbid("Only a lead can override a job-bound item.")
    kinds = facts.bound.get(item_state.item_id, ())
    if not kinds:
        return _conflict("This item is not earned by a job: tick it instead.")
    if SCHEMA_APPROVAL in kinds:
        return _conflict("Only a lead's approval of unified_schema.sql ticks this item; "
                         "it cannot be overridden.")
    if item_state.checked:
        return _conflict("This item is already ticked.")
    if item_state.not_applicable:
        return _conflict("This item is marked not applicable; clear that first.")
    return ALLOW


def can_withdraw_earned(item_state):
    """An earned tick is withdrawn when its evidence stops holding (a later bound run failed,
    or its evidence no longer matches its sha256). Overrides and hand ticks are people's
    decisions and stay."""
    if not item_state.checked or not item_state.earned_by:
        return _conflict("This item holds no earned tick.")
    return ALLOW


def can_untick(user, item_state, facts):
    """May this user untick this ticked item now (which withdraws later sign-offs)?"""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    if not item_state.checked:
        return _conflict("This item is not ticked.")
    return ALLOW


def can_mark_not_applicable(user, item_state, facts):
    """'(if applicable)' items: any worker; any other item: only a lead."""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    if not item_state.item.if_applicable and not can_lead(user):
        return _forbid("Only a lead can mark an item not applicable unless it says 'if applicable'.")
    if item_state.checked:
        return _conflict("Untick the item before marking it not applicable.")
    if item_state.not_applicable:
        return _conflict("This item is already marked not applicable.")
    return ALLOW


def can_clear_not_applicable(user, item_state, facts):
    """May this user make a not-applicable item applicable again?"""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    if not item_state.not_applicable:
        return _conflict("This item is not marked not applicable.")
    return ALLOW


@dataclass(frozen=True)
class ItemChoices:
    """What a user may do to one item now, each flag the answer of the rule its action asks, so
    a page shows a control exactly when the action would take it (a race aside)."""

    change: bool  # annotate it, run its jobs (its phase is open and the user may work)
    tick: bool
    untick: bool
    override: bool
    mark_na: bool
    clear_na: bool


def item_choices(user, item_state, facts):
    """The ItemChoices of `user` on `item_state`, from the same rules the actions ask."""
    change = bool(can_change_item(user, item_state, facts))
    if not change:
        return ItemChoices(False, False, False, False, False, False)
    return ItemChoices(
        change=True,
        tick=bool(can_tick(user, item_state, facts)),
        untick=bool(can_untick(user, item_state, facts)),
        override=bool(can_override(user, item_state, facts)),
        mark_na=bool(can_mark_not_applicable(user, item_state, facts)),
        clear_na=bool(can_clear_not_applicable(user, item_state, facts)),
    )


def can_approve_schema_file(user, item_state, facts, evidence, approval):
    """May this user approve `evidence` (the newest unified_schema.sql) from the approval item
    `item_state` now? `approval` is the one standing for that file, if any."""
    decision = can_change_item(user, item_state, facts)
    if not decision:
        return decision
    decision = can_approve_schema(user)
    if not decision:
        return decision
    if evidence is None:
        return _conflict("No unified_schema.sql yet: the schema job makes it.")
    if approval is not None:
        return _conflict("This unified_schema.sql is already approved.")
    return ALLOW


def can_sign_off(user, phase, facts):
    """A lead signs off a gated phase once it is open and complete, and only once."""
    decision = can_lead(user)
    if not decision:
        return decision
    if phase.kind != Phase.GATED:
        return _conflict(f"The {phase.title} is not signed off; only gated phases are.")
    status = facts.status(phase)
    if status.state == LOCKED:
        return _conflict(status.reason)
    if status.state == SIGNED_OFF:
        return _conflict(f"{phase.title} is already signed off.")
    if status.state != COMPLETE:
        missing = status.total - status.done
        return _conflict(f"{phase.title} is not complete: {missing} item(s) still open.")
    return ALLOW


def withdrawn_by_change(facts, phase):
    """What a change to an item of `phase` withdraws: the standing sign-offs of that phase and
    every later gated one, and with them the open go-live request. ([SignOff], request|None)"""
    if phase.kind != Phase.GATED:
        return [], None
    later = [facts.sign_offs[p.pk] for p in facts.gated
             if p.order >= phase.order and p.pk in facts.sign_offs]
    return later, (facts.go_live if later else None)


def withdrawal_words(facts, phase):
    """withdrawn_by_change in words, one line per thing withdrawn, as the page lists them."""
    sign_offs, go_live = withdrawn_by_change(facts, phase)
    by_pk = {p.pk: p for p in facts.phases}
    words = [f"the sign-off of {by_pk[s.phase_id].title} by {s.lead.get_username()}"
             for s in sign_offs]
    if go_live is not None:
        approvals = len({a.lead_id for a in facts.approvals if getattr(a, "by_lead", True)})
        authorized = approvals >= approvals_required()
        words.append(f"the {'authorized ' if authorized else ''}go-live request by "
                     f"{go_live.requested_by.get_username()} with its {approvals} approval(s)")
    return words


def can_withdraw(facts, phase, confirm, reason):
    """A change that withdraws sign-offs (or a go-live request) needs the person's confirmation
    and a reason; the refusal lists what would be withdrawn."""
    words = withdrawal_words(facts, phase)
    if not words:
        return ALLOW
    if not confirm:
        return Decision(False, "This withdraws " + "; ".join(words) + ". Confirm with a reason "
                        "to go on.", CONFLICT, withdraws=tuple(words))
    if not (reason or "").strip():
        return Decision(False, "Say why: this withdraws " + "; ".join(words) + ".", 400,
                        withdraws=tuple(words))
    return ALLOW


def all_phases_signed_off(facts):
    """Every gated phase of the runbook is signed off."""
    return bool(facts.gated) and all(facts.status(p).state == SIGNED_OFF for p in facts.gated)


def approvals_required():
    """How many different leads must approve go-live (GO_LIVE_APPROVALS_REQUIRED)."""
    return settings.GO_LIVE_APPROVALS_REQUIRED


def can_request_go_live(user, facts):
    """A lead requests go-live once every gated phase is signed off, and only once."""
    decision = can_lead(user)
    if not decision:
        return decision
    if facts.go_live is not None:
        return _conflict("Go-live has already been requested.")
    if not all_phases_signed_off(facts):
        return _conflict("Go-live can be requested once every gated phase is signed off.")
    return ALLOW


def can_approve_go_live(user, facts):
    """Only members of the lead group approve go-live; an admin who is not a lead cannot be the
    second approver."""
    if not is_lead(user):
        return _forbid("Only members of the lead group approve go-live (an admin who is not a "
                       "lead cannot).")
    if facts.go_live is None:
        return _conflict("Nobody has requested go-live yet.")
    if not all_phases_signed_off(facts):
        return _conflict("Go-live needs every gated phase signed off.")
    if facts.go_live.requested_by_id == user.pk:
        return _forbid("You requested this go-live; a different lead must approve it.")
    if any(a.lead_id == user.pk for a in facts.approvals):
        return _conflict("You have already approved this go-live.")
    return ALLOW


def can_run_job(user, runbook, kind, items, facts):
    """Members and leads run jobs on items whose phase is open (a job with no bound item on this
    template may run once the runbook's first phase is open); a kind declared for leads
    (`JobKind.who == "lead"`) only members of the lead group."""
    decision = can_work(user)
    if not decision:
        return decision
    if kind.who == LEAD and not is_lead(user):
        return _forbid(f"Only members of the lead group run '{kind.title}': it changes "
                       "production.")
    if items:
        locked = [facts.status(i.group.phase_id) for i in items]
        if all(s.state == LOCKED for s in locked):
            return _conflict(locked[0].reason)
    if kind.needs_sources and not runbook.sources.exists():
        return _conflict("Add the runbook's SQLite sources before running this job.")
    if kind.needs_target and not hasattr(runbook, "target"):
        return _conflict("Set the runbook's target PostgreSQL URL before running this job.")
    return ALLOW


def can_set_param(user, param):
    """A run's parameter marked for leads (`Param.who == "lead"`) is set only by a lead; the
    others by anyone who may run the job (asked before, in can_run_job)."""
    if param.who == "lead" and not can_lead(user):
        return _forbid(f"Only a lead can set the parameter '{param.name}'.")
    return ALLOW


def can_cancel_run(user, run):
    """Who may run a job may cancel its queued or running run."""
    decision = can_work(user)
    if not decision:
        return decision
    if not run.active:
        return _conflict(f"This run has already ended ({run.state}).")
    return ALLOW


def can_approve_schema(user):
    """The unified schema is approved by a member of the lead group, never by a non-lead admin."""
    if not is_lead(user):
        return _forbid("Only members of the lead group approve the schema (an admin who is not "
                       "a lead cannot).")
    return ALLOW


def can_configure(user):
    """Sources, target URL: a lead's (or admin's) configuration of the runbook."""
    return can_lead(user)


def latest_schema_evidence(runbook):
    """The unified_schema.sql evidence of the newest succeeded schema run, or None."""
    from .models import Evidence

    return (Evidence.objects.filter(run__runbook=runbook, run__kind="schema",
                                    name="unified_schema.sql", run__state="succeeded")
            .order_by("-created_at", "-pk").first())


def schema_approval(runbook):
    """The approval that stands for the newest unified_schema.sql, or None: a new schema file
    (a different sha256) voids earlier approvals."""
    from .models import SchemaApproval

    latest = latest_schema_evidence(runbook)
    if latest is None:
        return None
    return (SchemaApproval.objects.filter(runbook=runbook, sha256=latest.sha256,
                                          lead__groups__name=LEAD, lead__is_active=True)
            .select_related("lead").order_by("-created_at").first())


def can_apply_schema(runbook, file_sha256):
    """The migrate and dry-run jobs apply unified_schema.sql: only while a lead's approval stands
    for the exact sha256 of the file they will apply (`file_sha256`, None when there is none)."""
    approval = schema_approval(runbook)
    if approval is None:
        latest = latest_schema_evidence(runbook)
        if latest is None:
            return _conflict("No unified_schema.sql yet: run the schema job, then a lead must "
                             "approve the file before the migration runs.")
        return _conflict(f"unified_schema.sql (sha256 {latest.sha256[:12]}…) is not approved: a "
                         "lead must approve it before the migration runs.")
    if file_sha256 is None:
        return _conflict("The approved unified_schema.sql is missing from the work folder: run "
                         "the schema job again and have the new file approved.")
    if file_sha256 != approval.sha256:
        return _conflict(f"unified_schema.sql on disk (sha256 {file_sha256[:12]}…) is not the file "
                         f"{approval.lead.get_username()} approved (sha256 {approval.sha256[:12]}…): "
                         "run the schema job again and have the new file approved.")
    return ALLOW


def can_edit_contacts(user):
    """The runbook's emergency contacts are edited by leads."""
    return can_lead(user)


@dataclass
class StatusBlock:
    """The seed's 'Checklist Completion' block, computed instead of ticked."""

    phases: list  # PhaseStatus of the gated phases
    all_checks_complete: bool
    ready_for_production: bool
    team_approval: str
    approvals: int
    approvals_required: int
    go_live_authorized: bool
    go_live_state: str
    missing: list  # what still stands between the runbook and go-live, in plain words
    done: int  # every item of every phase
    total: int
    earned: int = 0
    overridden: int = 0
    by_hand: int = 0
    # The work: items of the gated phases, what "All checks complete" speaks of.
    work_done: int = 0
    work_total: int = 0
    # Rollback triggers that fired, of those bound (counted apart: a fired trigger is no progress).
    triggers_fired: int = 0
    triggers_total: int = 0
    others: list = field(default_factory=list)  # PhaseStatus of the phases that are not gated

    @property
    def percent(self):
        """Done of total as a whole percent (100 when there is nothing to do)."""
        return round(100 * self.done / self.total) if self.total else 100


def status_block(facts):
    """The seed's Checklist Completion block, computed from the facts: progress, tick sources,
    readiness, approvals and what is missing."""
    gated = [facts.status(p) for p in facts.gated]
    done = sum(d for d, _ in facts.counts.values())
    total = sum(t for _, t in facts.counts.values())
    all_complete = all(s.state in (COMPLETE, SIGNED_OFF) for s in gated)
    signed = all_phases_signed_off(facts)
    required = approvals_required()
    # Only approvals by members of the lead group count (one whose approver left the group, or an
    # admin's from before this rule, does not).
    count = len({a.lead_id for a in facts.approvals if getattr(a, "by_lead", True)})
    authorized = signed and facts.go_live is not None and count >= required

    missing = []
    for s in gated:
        if s.state in (LOCKED, OPEN):
            missing.append(f"{s.phase.title}: {s.total - s.done} of {s.total} items open.")
        if s.state != SIGNED_OFF:
            missing.append(f"{s.phase.title} is not signed off.")
    if facts.go_live is None:
        missing.append("Go-live has not been requested.")
    elif count < required:
        missing.append(f"Go-live needs {required - count} more lead approval(s).")

    if authorized:
        state, team = "authorized", "Approved"
    elif facts.go_live is not None:
        state, team = "awaiting approval", f"{count} of {required} approvals"
    else:
        state, team = "not requested", "Pending"
    return StatusBlock(
        work_done=sum(s.done for s in gated),
        work_total=sum(s.total for s in gated),
        triggers_fired=facts.triggers[0],
        triggers_total=facts.triggers[1],
        others=[facts.status(p) for p in facts.phases if p.kind != Phase.GATED],
        phases=gated,
        all_checks_complete=all_complete,
        ready_for_production=signed,
        team_approval=team,
        approvals=count,
        approvals_required=required,
        go_live_authorized=authorized,
        go_live_state=state,
        missing=missing,
        done=done,
        total=total,
        earned=facts.sources.get(EARNED, 0),
        overridden=facts.sources.get(OVERRIDDEN, 0),
        by_hand=facts.sources.get(BY_HAND, 0),
    )


def current_phase(facts):
    """The first gated phase that is not signed off (None when all are)."""
    for p in facts.gated:
        if facts.status(p).state != SIGNED_OFF:
            return p
    return None


def phase_in_focus(facts):
    """The phase a runbook's page opens on: the current gated phase, or else the first open
    phase not yet complete (None when there is nothing left to work)."""
    current = current_phase(facts)
    if current is not None:
        return current
    for p in facts.phases:
        if facts.status(p).state == OPEN:
            return p
    return None


@dataclass
class Withdrawal:
    """The latest change that withdrew sign-offs, while a phase it withdrew is not signed off
    again: the page tells everyone what happened."""

    at: object
    by: str
    reason: str
    phases: list  # titles, in checklist order
    go_live: bool  # an open go-live request went with them


def last_withdrawal(facts):
    """The Withdrawal to show on the runbook's pages, or None (a query only while there is
    one to show)."""
    runbook = facts.runbook
    latest = facts.withdrawn
    at = latest[0].withdrawn_at if latest else None
    same = [s for s in latest if s.withdrawn_at == at]
    if not same or all(s.phase_id in facts.sign_offs for s in same):
        return None
    go_live = GoLiveRequest.objects.filter(runbook=runbook, withdrawn_at=at).exists()
    order = {p.pk: (p.order, p.title) for p in facts.phases}
    first = same[0]
    return Withdrawal(at, first.withdrawn_by.get_username() if first.withdrawn_by else "a job",
                      first.withdrawn_reason,
                      [order[s.phase_id][1] for s in sorted(same, key=lambda s: order[s.phase_id])],
                      go_live)


def template_of(obj):
    """The template version an admin-editable object belongs to (None for other objects)."""
    from .models import ChecklistTemplate, ContactField, Group, Item, JobBinding, Phase

    if isinstance(obj, ChecklistTemplate):
        return obj
    if isinstance(obj, (Phase, ContactField)):
        return obj.template if obj.template_id else None
    if isinstance(obj, Group):
        return obj.phase.template if obj.phase_id else None
    if isinstance(obj, Item):
        return obj.group.phase.template if obj.group_id else None
    if isinstance(obj, JobBinding):
        return None  # which job earns an item is configuration, not the template's text
    return None


def can_admin_write(user, obj):
    """May this user change `obj` in the admin? Staff with the model permission (Django's admin
    asks that first), and never a template version a runbook uses: its text is what people ticked
    and signed off; import a new version instead."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return _forbid("Only admins change data in the admin.")
    template = template_of(obj)
    if template is not None and template.pk and template.runbooks.exists():
        return _conflict(f"{template} is used by a runbook, so it is read-only: import a new "
                         "version of the checklist instead.")
    return ALLOW
