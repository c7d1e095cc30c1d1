"""Building the runbook's pages: what each item row, heading and status block shows, gathered in a
fixed number of queries and rendered from partials (cached per row where nothing changed).

The runbook page is built around now: the phase in focus (rules.phase_in_focus) comes first and
open with its items; every other phase is its head (state, counts, lock reason, sign-off) and a
collapsed item list that loads when opened (`phase_context`, GET phase-items). Each job bound to
a phase's items has one panel in that phase (`job-<phase_id>-<kind slug>`); the rows link to it.

Views call the `*_context` functions and render; the live stream calls the `render_*` functions
to send only what changed. Each piece carries a stable DOM id, so a delta replaces it by id
(htmx out-of-band swap; `oob=True` adds `hx-swap-oob="true"`):

    item-<state_id>        one item row (<li>), `render_rows(user, runbook, state_ids)`; absent
                           from the page while its phase is collapsed and not loaded (htmx then
                           ignores the swap)
    group-h-<group_id>     a group's heading and count   } `render_heads(user, runbook, state_ids)`
    phase-head-<phase_id>  a phase's heading, count,     }  (the heads above those items)
                           lock reason and sign-off form }
    phase-<phase_id>       the whole phase section (rows included); never swapped by a delta
                           (live.js moves it as #phase-order says)
    job-<phase_id>-<kind>  a job's panel in a phase, sent when its run moved (`render_deltas`
                           with run_ids)
    status-block           the completion and go-live block, `render_status(user, runbook)`
    phase-nav              the phase navigator      } with every phase head, after a sign-off or
    withdrawal-slot        the latest withdrawal    }  withdrawal: `render_phase_change`
    phase-order            the phases' order, focus }  (rules.last_withdrawal, phase_in_focus)
    runbook-body           the whole body (`runbook_context` + _runbook_body.html; shared per
                           revision and kind of viewer, `runbook_body`): a page load, a poll, or
                           a page too far behind for deltas

`render_deltas(user, runbook, state_ids)` joins the rows, their heads and the status block into
one out-of-band answer. What a row shows depends on the viewer only through `viewer_key(user)`:
two users with the same key get the same bytes, so a stream may render once per key.

Decisions come from checklist/rules.py (`rules.item_choices`, `rules.can_approve_schema_file`,
`rules.can_sign_off`, `rules.phase_in_focus`, ...); this module only gathers them and hands them
to the templates.
"""
import hashlib

from django.core.cache import caches
from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.safestring import mark_safe

from . import jobs, rules
from .models import ItemNote, ItemState, SchemaApproval

ROW_CACHE = "default"
ROW_CACHE_SECONDS = 3600

# reverse() for each of the ~800 item links was a third of the page's render time: reverse each
# item URL once with a placeholder id and substitute the real ids.
_PLACEHOLDER = "2147483647"
_ITEM_URLS = {"tick": "item-tick", "untick": "item-untick", "note": "item-note",
              "forms": "item-forms",
              "override": "item-override",
              "not_applicable": "item-not-applicable", "applicable": "item-applicable",
              "detail": "item-detail"}


def viewer_key(user):
    """What of the viewer a rendered piece depends on: the rules asked per viewer read only the
    roles (plus, for approvals, who the viewer is), so equal keys mean equal bytes for rows,
    heads and the status block."""
    return (bool(rules.can_work(user)), bool(rules.can_lead(user)), rules.is_lead(user))


def _item_urls(runbook):
    patterns = {key: reverse(name, args=[runbook.pk, _PLACEHOLDER])
                for key, name in _ITEM_URLS.items()}
    return lambda pk: {key: url.replace(_PLACEHOLDER, str(pk)) for key, url in patterns.items()}


def latest_notes(runbook, state_ids=None):
    """state_id -> its newest note, carrying `count` (all notes of that item), in one query.
    The runbook page shows the newest note and a count; the item page shows them all."""
    notes = ItemNote.objects.filter(state__runbook=runbook)
    if state_ids is not None:
        # A few items (a write's or a delta's rows, each with a few notes): read their notes
        # plainly and pick the newest here; building the window query cost more than reading.
        newest = {}
        for note in (notes.filter(state_id__in=state_ids).select_related("author")
                     .order_by("state_id", "-created_at", "-pk")):
            if note.state_id in newest:
                newest[note.state_id].count += 1
            else:
                note.count = 1
                newest[note.state_id] = note
        return newest
    notes = notes.annotate(
        rank=Window(RowNumber(), partition_by=[F("state_id")],
                    order_by=[F("created_at").desc(), F("pk").desc()]),
        count=Window(Count("pk"), partition_by=[F("state_id")]),
    ).filter(rank=1).select_related("author")
    return {note.state_id: note for note in notes}


def _latest_runs_of(runbook, kinds):
    out = {}
    for run in runbook.runs.filter(kind__in=kinds).select_related("started_by").order_by(
            "-created_at", "-pk"):
        out.setdefault(run.kind, run)
    return out


def schema_facts(runbook):
    """The newest unified_schema.sql, the approval that stands for it, and the newest approval a
    newer file voided, as the rules see them (one query without a file, four with one)."""
    evidence = rules.latest_schema_evidence(runbook)
    if evidence is None:
        return {"evidence": None, "approval": None, "voided": None}
    approval = rules.schema_approval(runbook)
    voided = None
    if approval is None:
        voided = (SchemaApproval.objects.filter(runbook=runbook).exclude(sha256=evidence.sha256)
                  .select_related("lead").order_by("-created_at", "-pk").first())
    return {"evidence": evidence, "approval": approval, "voided": voided}


class _Rows:
    """What every item row needs beyond its own state, gathered once per request; `only` (a set
    of ItemState ids) narrows the notes and runs to those items, for a write's or a delta's
    answer."""

    def __init__(self, user, runbook, facts, only=None):
        self.user, self.runbook, self.facts = user, runbook, facts
        self.bindings = facts.bound
        self.notes = latest_notes(runbook, only)
        self.only = only
        self.runs = jobs.latest_runs(runbook) if only is None else None
        self.urls = _item_urls(runbook)
        # Asked once per page whether or not the template has the item, so every runbook page
        # costs the same number of queries.
        self._schema = schema_facts(runbook) if only is None else None

    def _runs_for(self, states):
        if self.runs is None:
            kinds = {k for st in states for k in self.bindings.get(st.item_id, ())}
            self.runs = _latest_runs_of(self.runbook, kinds) if kinds else {}
        return self.runs

    def decorate(self, states):
        runs = self._runs_for(states)
        for st in states:
            self._decorate(st, runs)
        return states

    def _decorate(self, st, runs):
        st.last_note = self.notes.get(st.pk)
        st.note_count = st.last_note.count if st.last_note else 0
        st.may = rules.item_choices(self.user, st, self.facts)
        kinds = self.bindings.get(st.item_id, ())
        # The schema-approval "kind" is no job: its item shows the approval panel instead.
        phase_id = st.item.group.phase_id
        st.locked = self.facts.status(phase_id).state == rules.LOCKED
        st.jobs = [{"kind": jobs.kind_shown(k), "name": k, "run": runs.get(k),
                    "anchor": f"job-{phase_id}-{slugify(k)}",
                    "may_run": st.may.change,
                    "may_cancel": runs.get(k) is not None and bool(
                        rules.can_cancel_run(self.user, runs[k]))}
                   for k in kinds if k != rules.SCHEMA_APPROVAL]
        st.source = rules.tick_source(st) if st.checked else ""
        st.urls = self.urls(st.pk)
        st.schema = None
        if rules.SCHEMA_APPROVAL in kinds:
            if self._schema is None:
                self._schema = schema_facts(self.runbook)
            schema = self._schema
            st.schema = {**schema, "may_approve": bool(rules.can_approve_schema_file(
                self.user, st, self.facts, schema["evidence"], schema["approval"]))}
        return st


def _row_key(st, oob):
    """A cache key over every value an item row shows, so a cached row is never stale: a change
    to any of them is a different key."""
    note = st.last_note
    shown = (
        st.pk, st.item.text, st.checked, st.checked_by.get_username() if st.checked_by else "",
        st.checked_at, st.not_applicable, st.na_reason, st.earned_by, st.overridden,
        st.override_reason, st.version, tuple(vars(st.may).items()), st.locked, st.note_count,
        (note.pk, note.text, note.action, note.created_at,
         note.author.get_username() if note.author else "") if note else None,
        [(job["name"], job["anchor"], job["kind"].title,
          (job["run"].pk, job["run"].state) if job["run"] else None)
         for job in st.jobs],
        _schema_shown(st.schema),
        timezone.get_current_timezone_name(), oob,
    )
    return "item-row:" + hashlib.sha256(repr(shown).encode()).hexdigest()


def _schema_shown(panel):
    if panel is None:
        return None
    ev, approval, voided = panel["evidence"], panel["approval"], panel["voided"]
    return (ev and (ev.pk, ev.sha256, ev.path), approval and approval.pk, voided and voided.pk,
            panel["may_approve"])


def _prerender_rows(runbook, states, oob=False):
    """Set `st.html` on each row, from the cache or rendered once and cached.

    Rendering the rows was most of the page's cost, and most rows do not change between two
    loads of the page. A row names its jobs and their state; the run panels with their progress
    and Cancel form are the phase's (_job.html), rendered with the page."""
    cache = caches[ROW_CACHE]
    keyed = {_row_key(st, oob): st for st in states}
    found = cache.get_many(list(keyed))
    missing = {}
    for key, st in keyed.items():
        html = found.get(key)
        if html is None:
            html = missing[key] = render_to_string(
                "checklist/_item.html", {"st": st, "runbook": runbook, "in_runbook": True,
                                         "row_oob": oob})
        st.html = mark_safe(html)
    if missing:
        cache.set_many(missing, ROW_CACHE_SECONDS)


def _group(group, states):
    group.state_list = states
    group.done = sum(1 for s in states if s.complete)
    group.complete = group.done == len(states)
    return group


def _runbook_flags(user, facts):
    return {
        "may_work": bool(rules.can_work(user)),
        "may_lead": bool(rules.can_lead(user)),
        "may_edit_contacts": bool(rules.can_edit_contacts(user)),
        "may_configure": bool(rules.can_configure(user)),
        "may_request_go_live": bool(rules.can_request_go_live(user, facts)),
        "may_approve_go_live": bool(rules.can_approve_go_live(user, facts)),
        "may_view_history": bool(rules.can_view_history(user)),
    }


def _fill_phase(runbook, status, states, rows):
    """Give a phase's status what its item list shows: its groups with their rows (rendered or
    from the cache) and each job bound to its items, once."""
    rows.decorate(states)
    _prerender_rows(runbook, states)
    groups = {}
    for st in states:
        groups.setdefault(st.item.group_id, (st.item.group, []))[1].append(st)
    status.group_list = [_group(g, members) for g, members in groups.values()]
    jobs_shown = {}
    for st in states:
        for job in st.jobs:
            shown = jobs_shown.setdefault(job["name"], {**job, "items": []})
            shown["items"].append(st)
            # Runnable when any of its items here may be worked.
            shown["may_run"] = shown["may_run"] or job["may_run"]
    status.jobs = list(jobs_shown.values())
    status.filled = True
    return status


def _phase_statuses(user, facts, focus):
    phases = []
    for phase in facts.phases:
        status = facts.status(phase)
        status.may_sign_off = bool(rules.can_sign_off(user, phase, facts))
        status.expanded = focus is not None and phase.pk == focus.pk
        status.filled = False
        phases.append(status)
    return phases


def runbook_context(user, runbook):
    """Everything the runbook page shows, in a fixed number of queries: the phase in focus
    first, open, with its items; the other phases collapsed to their heads (their items load
    when opened, `phase_context`)."""
    facts = rules.RunbookFacts.load(runbook)
    focus = rules.phase_in_focus(facts)
    phases = _phase_statuses(user, facts, focus)
    rows = _Rows(user, runbook, facts)
    for status in phases:
        if status.expanded:
            _fill_phase(runbook, status, [st for st in facts.states
                                          if st.item.group.phase_id == status.phase.pk], rows)
    return {
        "runbook": runbook,
        "facts": facts,
        "nav": phases,
        "phases": sorted(phases, key=lambda s: not s.expanded),
        "focus_id": focus.pk if focus is not None else "",
        # Not "block": inside {% block %} that name is the template block itself.
        "summary": rules.status_block(facts),
        "contacts": _contacts(runbook),
        "withdrawal": rules.last_withdrawal(facts),
        **_runbook_flags(user, facts),
        "in_runbook": True,
    }


# The runbook page's body, rendered once per (runbook, revision, last audit event, kind of viewer,
# timezone) in each process and shared by every page load and poll with the same key: when 50
# people open the page in the same second, one of them renders it. The revision moves with every
# write on the runbook (job progress included) and every other write (a template's bindings, an
# admin edit) records an audit event, so a key never names a stale body. The sign-off and
# contact forms carry each reader's own CSRF token: the body is cached with a placeholder.
BODY_CACHE_SECONDS = 120
_CSRF_PLACEHOLDER = "mingus-csrf-placeholder-0f3c"


def _last_audit_seq():
    from .audit import AuditEvent

    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _shared_render(user, runbook, template, build, csrf_token, *part):
    """`template` rendered with `build()` once per key (BODY_CACHE_SECONDS), with this reader's
    `csrf_token` put in its forms."""
    cache = caches[ROW_CACHE]
    shown = (template, runbook.pk, runbook.revision, _last_audit_seq(), viewer_key(user),
             timezone.get_current_timezone_name(), *part)
    key = "page-part:" + hashlib.sha256(repr(shown).encode()).hexdigest()
    html = cache.get(key)
    if html is None:
        context = build()
        context["csrf_token"] = _CSRF_PLACEHOLDER
        html = render_to_string(template, context)
        cache.set(key, html, BODY_CACHE_SECONDS)
    return mark_safe(html.replace(_CSRF_PLACEHOLDER, csrf_token))


def runbook_body(user, runbook, csrf_token=""):
    """The runbook page's body (_runbook_body.html at `runbook.revision`, as read by the
    caller) with `csrf_token` in its forms; rendered once per key (see BODY_CACHE_SECONDS)."""
    return _shared_render(user, runbook, "checklist/_runbook_body.html",
                          lambda: runbook_context(user, runbook), csrf_token)


def phase_items(user, runbook, phase_id, csrf_token=""):
    """One phase's item list (`phase_context` + _phase_items.html), shared as the body is: after
    a sign-off every open page reloads the moved phases' lists at once."""
    return _shared_render(user, runbook, "checklist/_phase_items.html",
                          lambda: phase_context(user, runbook, phase_id), csrf_token, phase_id)


def runbook_page_context(user, runbook, csrf_token=""):
    """The runbook page: its body (`runbook_body`) and what the page around it shows."""
    return {"runbook": runbook, "body": runbook_body(user, runbook, csrf_token),
            "may_configure": bool(rules.can_configure(user)),
            "may_view_history": bool(rules.can_view_history(user)), "in_runbook": True}


def phase_context(user, runbook, phase_id):
    """One phase's item list (groups, rows, its jobs), for a collapsed phase being opened."""
    facts = rules.RunbookFacts.load(runbook)
    status = facts.status(phase_id)
    status.may_sign_off = bool(rules.can_sign_off(user, status.phase, facts))
    _fill_phase(runbook, status, [st for st in facts.states
                                  if st.item.group.phase_id == status.phase.pk],
                _Rows(user, runbook, facts))
    return {"runbook": runbook, "ps": status, "in_runbook": True}


def go_live_context(user, runbook):
    """The go-live page: the status block, what is missing, the approvals (no item rows)."""
    facts = rules.RunbookFacts.load(runbook, states=False)
    return {
        "runbook": runbook,
        "facts": facts,
        "summary": rules.status_block(facts),
        "withdrawal": rules.last_withdrawal(facts),
        **_runbook_flags(user, facts),
    }


def contacts_context(user, runbook):
    return {"runbook": runbook, "contacts": _contacts(runbook),
            "may_edit_contacts": bool(rules.can_edit_contacts(user))}


def _contacts(runbook):
    return list(runbook.contact_values.select_related("field", "updated_by")
                .order_by("field__order"))


def _pieces(user, runbook, state_ids, facts=None):
    """The facts (counts only), the given states decorated, and their groups read whole (a
    group's count needs all its items), in a fixed number of queries."""
    facts = facts or rules.RunbookFacts.load(runbook, states=False)
    group_ids = ItemState.objects.filter(runbook=runbook, pk__in=state_ids).values("item__group_id")
    in_groups = list(
        ItemState.objects.filter(runbook=runbook, item__group_id__in=group_ids)
        .select_related("item__group__phase", "checked_by")
        .order_by("item__group__phase__order", "item__group__order", "item__order"))
    wanted = set(state_ids)
    states = [st for st in in_groups if st.pk in wanted]
    _Rows(user, runbook, facts, only=wanted).decorate(states)
    groups = {}
    for st in in_groups:
        groups.setdefault(st.item.group_id, (st.item.group, []))[1].append(st)
    groups = [_group(g, members) for g, members in groups.values()]
    phases = {}
    for group in groups:
        if group.phase_id not in phases:
            status = facts.status(group.phase_id)
            status.may_sign_off = bool(rules.can_sign_off(user, group.phase, facts))
            phases[group.phase_id] = status
    return facts, states, groups, list(phases.values())


def item_write_context(user, runbook, state_id):
    """What an item write changes on the page: the item, its group heading, its phase heading
    and the status block, from one load of the facts."""
    facts, states, groups, phases = _pieces(user, runbook, [state_id])
    return {
        "runbook": runbook,
        "facts": facts,
        "st": states[0],
        "group": groups[0],
        "ps": phases[0],
        "summary": rules.status_block(facts),
        "may_work": bool(rules.can_work(user)),
        "in_runbook": True,
        "oob": True,
    }


def item_row(user, runbook, state_id):
    """(the item's row as HTML, the facts it was decided from): the answer to a write from a
    page whose stream is open (the stream sends that page the headings and status it changed,
    rendered once for all pages, so the write does not render them again)."""
    facts = rules.RunbookFacts.load(runbook, states=False)
    st = (ItemState.objects.select_related("item__group__phase", "checked_by")
          .get(runbook=runbook, pk=state_id))
    _Rows(user, runbook, facts, only={st.pk}).decorate([st])
    _prerender_rows(runbook, [st])
    return st.html, facts


def item_forms_context(user, runbook, state_id):
    """The row's less frequent forms (not applicable, a lead's override), asked for on click."""
    _, states, _, _ = _pieces(user, runbook, [state_id])
    return {"runbook": runbook, "st": states[0]} if states else None


# --- Pieces for live deltas -------------------------------------------------------------------


def render_rows(user, runbook, state_ids, oob=False):
    """state_id -> the HTML of its row (`<li id="item-<state_id>">`), for the given ids of this
    runbook (unknown ids are left out)."""
    _, states, _, _ = _pieces(user, runbook, state_ids)
    return _rows_html(runbook, states, oob)


def _rows_html(runbook, states, oob):
    _prerender_rows(runbook, states, oob)
    return {st.pk: st.html for st in states}


def _heads_html(user, runbook, groups, phases, oob):
    parts = [render_to_string("checklist/_group_head.html", {"group": g, "oob": oob})
             for g in groups]
    parts += [render_to_string("checklist/_phase_head.html",
                               {"ps": ps, "runbook": runbook, "oob": oob}) for ps in phases]
    return "".join(parts)


def render_heads(user, runbook, state_ids, oob=True):
    """The group headings (`group-h-<id>`) and phase heads (`phase-head-<id>`) above the given
    items, with their counts."""
    _, _, groups, phases = _pieces(user, runbook, state_ids)
    return _heads_html(user, runbook, groups, phases, oob)


def render_status(user, runbook, oob=True, facts=None):
    """The status block (`id="status-block"`)."""
    facts = facts or rules.RunbookFacts.load(runbook, states=False)
    return render_to_string("checklist/_status_block.html",
                            {"summary": rules.status_block(facts), "runbook": runbook,
                             "oob": oob})


def render_deltas(user, runbook, state_ids, run_ids=()):
    """One out-of-band answer for a change to these items: their rows, the heads above them
    and the status block, each replacing the element with its id; with `run_ids` (runs that
    moved) also the job panels showing them (`job-<phase_id>-<kind slug>`), so a panel follows
    its run over the stream instead of polling."""
    facts, states, groups, phases = _pieces(user, runbook, state_ids)
    rows = _rows_html(runbook, states, True)
    return ("".join(rows.values()) + _heads_html(user, runbook, groups, phases, True)
            + render_status(user, runbook, True, facts) + _jobs_html(runbook, states, run_ids))


def _jobs_html(runbook, states, run_ids):
    """The job panels (_job.html) whose latest run is one of `run_ids`, gathered from the
    decorated rows of the items those runs earn (as `_fill_phase` gathers a phase's)."""
    run_ids, shown = set(run_ids), {}
    for st in states:
        for job in st.jobs:
            if job["run"] is None or job["run"].pk not in run_ids:
                continue
            panel = shown.setdefault(job["anchor"], {**job, "items": []})
            panel["items"].append(st)
            panel["may_run"] = panel["may_run"] or job["may_run"]
    return "".join(render_to_string("checklist/_job.html", {
        "job": job, "runbook": runbook, "in_runbook": True, "oob": True})
        for job in shown.values())


def render_phase_change(user, runbook, phase_ids, state_ids=()):
    """The out-of-band answer for a change of phase states (a sign-off, a withdrawal), instead
    of the body: every phase head, the navigator, the status block, the withdrawal notice, the
    changed rows with their group headings, and the phases' order (`#phase-order`: the phase in
    focus first; live.js moves the sections, opens that phase and reloads the item lists of the
    phases in `phase_ids` that the page shows)."""
    facts = rules.RunbookFacts.load(runbook, states=False)
    focus = rules.phase_in_focus(facts)
    phases = _phase_statuses(user, facts, focus)
    context = {"runbook": runbook, "nav": phases, "oob": True,
               "phases": sorted(phases, key=lambda s: not s.expanded),
               "focus_id": focus.pk if focus is not None else "",
               "withdrawal": rules.last_withdrawal(facts), "reload": sorted(phase_ids)}
    parts = [render_to_string("checklist/_sync.html", context)]
    if state_ids:
        _, states, groups, _ = _pieces(user, runbook, state_ids, facts)
        parts += _rows_html(runbook, states, True).values()
        parts += [render_to_string("checklist/_group_head.html", {"group": g, "oob": True})
                  for g in groups]
    parts += [render_to_string("checklist/_phase_head.html", {**context, "ps": ps})
              for ps in phases]
    parts.append(render_status(user, runbook, True, facts))
    for name in ("_phase_nav", "_withdrawal_slot", "_phase_order"):
        parts.append(render_to_string(f"checklist/{name}.html", context))
    return "\n".join(p.strip() for p in parts if p.strip())

